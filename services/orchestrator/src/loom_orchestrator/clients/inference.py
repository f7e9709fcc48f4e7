"""`ModelClient` over inference.v1 Generate. Cancelling the consuming task cancels the RPC,
which aborts the sequence in the engine (stop by the user stops generation upstream). The
channel, deadline, metadata, retries (before the first chunk only), status translation and
finish-reason map are the shared client's (loom_common.clients.inference)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from loom.inference.v1 import inference_pb2 as pb
from loom_common.clients import inference
from loom_orchestrator.engine.ports import ChatMessage, ModelChunk, ModelRequest, ToolCall


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
    """The engine's `ModelClient` over the shared inference client (loom_common.clients)."""

    def __init__(self, addr: str, timeout_s: float = 300.0) -> None:
        self.rpc = inference.InferenceClient(addr, timeout_s=timeout_s)

    async def close(self) -> None:
        await self.rpc.close()

    async def generate(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        # Closing this iterator (the node cancelled) closes the stream, which aborts generation.
        stream = self.rpc.generate(to_proto(request), tenant_id=request.tenant_id or None,
                                   run_id=request.run_id or None)
        try:
            async for c in stream:
                yield ModelChunk(text=c.text, finish_reason=c.finish_reason or "", prompt_tokens=c.prompt_tokens,
                                 completion_tokens=c.completion_tokens, model=c.model,
                                 tool_calls=[ToolCall(t.id, t.name, t.arguments) for t in c.tool_calls])
        finally:
            await stream.aclose()
