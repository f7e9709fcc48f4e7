"""`ModelClient` over inference.v1 Generate. Cancelling the consuming task cancels the RPC,
which aborts the sequence in the engine (stop by the user stops generation upstream)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc

from loom.inference.v1 import inference_pb2 as pb
from loom.inference.v1 import inference_pb2_grpc
from loom_common.grpc_client import call_metadata
from loom_orchestrator.clients import LazyChannel, translate
from loom_orchestrator.engine.ports import ChatMessage, ModelChunk, ModelRequest, ToolCall

_FINISH = {pb.FINISH_REASON_STOP: "stop", pb.FINISH_REASON_LENGTH: "length", pb.FINISH_REASON_TOOL_CALLS: "tool_calls",
           pb.FINISH_REASON_ABORTED: "aborted", pb.FINISH_REASON_ERROR: "error"}


def _message(m: ChatMessage) -> pb.ChatMessage:
    return pb.ChatMessage(role=m.role, content=m.content, name=m.name, tool_call_id=m.tool_call_id,
                          tool_calls=[pb.ToolCall(id=c.id, name=c.name, arguments_json=c.arguments)
                                      for c in m.tool_calls],
                          images=[pb.Image(data=i.data, mime_type=i.mime_type) for i in m.images])


def to_proto(req: ModelRequest) -> pb.GenerateRequest:
    p = req.params
    sampling = pb.SamplingParams(stop=[str(s) for s in p.get("stop") or []])
    for name, cast in (("temperature", float), ("top_p", float), ("top_k", int), ("repeat_penalty", float),
                       ("seed", int), ("max_tokens", int)):
        if p.get(name) is not None:
            setattr(sampling, name, cast(p[name]))
    return pb.GenerateRequest(
        model=req.model, messages=[_message(m) for m in req.messages], sampling=sampling,
        json_schema=json.dumps(req.json_schema) if req.json_schema else "",
        tools=[pb.ToolSpec(name=t.name, description=t.description, parameters_json_schema=json.dumps(t.parameters))
               for t in req.tools],
        tool_choice=req.tool_choice, request_id=req.request_id)


class InferenceClient:
    def __init__(self, addr: str, timeout_s: float = 300.0) -> None:
        self.channel = LazyChannel(addr)
        self.timeout_s = timeout_s

    async def generate(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        stub = inference_pb2_grpc.InferenceStub(self.channel.get())
        call = stub.Generate(to_proto(request), timeout=self.timeout_s,
                             metadata=call_metadata(tenant_id=request.tenant_id or None, run_id=request.run_id or None))
        try:
            async for c in call:
                yield ModelChunk(text=c.text, finish_reason=_FINISH.get(c.finish_reason, ""),
                                 prompt_tokens=c.usage.prompt_tokens, completion_tokens=c.usage.completion_tokens,
                                 tool_calls=[ToolCall(t.id, t.name, t.arguments_json) for t in c.tool_calls],
                                 model=c.model)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, "inference") from None
        finally:
            call.cancel()  # no-op when finished; aborts generation when the node was cancelled
