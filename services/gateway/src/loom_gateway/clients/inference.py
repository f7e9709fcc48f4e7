"""inference.v1 client for the OpenAI-compatible API: Generate (streamed), Embed, ListModels;
the workspace model endpoints' registration (RegisterRemoteModel, RemoveRemoteModel); and the
console's model pull (PullModel, its progress streamed).

Plain dataclasses go in and out, so the OpenAI router never touches protobuf. Cancelling the
async iterator of `generate` cancels the RPC, which aborts the sequence in the engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from loom.inference.v1 import inference_pb2 as pb
from loom.inference.v1 import inference_pb2_grpc as pb_grpc
from loom_common.grpc_client import call_metadata, channel
from loom_gateway.clients.errors import translate

_FINISH = {pb.FINISH_REASON_STOP: "stop", pb.FINISH_REASON_LENGTH: "length",
           pb.FINISH_REASON_TOOL_CALLS: "tool_calls", pb.FINISH_REASON_ABORTED: "stop",
           pb.FINISH_REASON_ERROR: "error"}


@dataclass
class ToolCallOut:
    id: str
    name: str
    arguments: str


@dataclass
class Chunk:
    text: str
    model: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: list[ToolCallOut] = field(default_factory=list)


@dataclass
class GenerateArgs:
    model: str
    messages: list[dict]          # {role, content, name?, tool_call_id?, tool_calls?: [{id, name, arguments}]}
    sampling: dict                # temperature, top_p, seed, max_tokens, stop
    tools: list[dict] = field(default_factory=list)   # {name, description, parameters_json}
    tool_choice: str = ""
    json_schema: str = ""
    request_id: str = ""


@dataclass
class PullProgress:
    status: str
    digest: str = ""
    total: int = 0        # bytes; 0 while unknown
    completed: int = 0


class InferenceClient:
    def __init__(self, addr: str, timeout_s: float, pull_timeout_s: float = 6 * 3600.0):
        self.addr = addr
        self.timeout_s = timeout_s
        self.pull_timeout_s = pull_timeout_s  # a model download: far longer than any generation
        self._stub: pb_grpc.InferenceStub | None = None
        self._channel = None

    def _get(self) -> pb_grpc.InferenceStub:
        if self._stub is None:  # channels bind to the running loop, so made lazily
            self._channel = channel(self.addr)
            self._stub = pb_grpc.InferenceStub(self._channel)
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def generate(self, args: GenerateArgs, tenant_id: str) -> AsyncIterator[Chunk]:
        req = pb.GenerateRequest(model=args.model, tool_choice=args.tool_choice, json_schema=args.json_schema,
                                 request_id=args.request_id, sampling=pb.SamplingParams(**args.sampling))
        for m in args.messages:
            req.messages.append(pb.ChatMessage(
                role=m["role"], content=m.get("content") or "", name=m.get("name") or "",
                tool_call_id=m.get("tool_call_id") or "",
                tool_calls=[pb.ToolCall(id=c["id"], name=c["name"], arguments_json=c["arguments"])
                            for c in m.get("tool_calls") or []]))
        for t in args.tools:
            req.tools.append(pb.ToolSpec(name=t["name"], description=t.get("description", ""),
                                         parameters_json_schema=t.get("parameters_json", "")))
        call = self._get().Generate(req, timeout=self.timeout_s, metadata=call_metadata(tenant_id=tenant_id))
        try:
            async for c in call:
                yield Chunk(text=c.text, model=c.model, finish_reason=_FINISH.get(c.finish_reason),
                            prompt_tokens=c.usage.prompt_tokens, completion_tokens=c.usage.completion_tokens,
                            tool_calls=[ToolCallOut(t.id, t.name, t.arguments_json) for t in c.tool_calls])
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, "inference") from exc
        finally:
            call.cancel()

    async def complete(self, model: str, prompt: str, *, json_schema: str = "", max_tokens: int = 256,
                       tenant_id: str) -> tuple[str, int]:
        """One user turn answered whole at temperature 0: (the reply, tokens used)."""
        args = GenerateArgs(model=model, messages=[{"role": "user", "content": prompt}], json_schema=json_schema,
                            sampling={"temperature": 0.0, "max_tokens": max_tokens})
        parts, tokens = [], 0
        async for chunk in self.generate(args, tenant_id):
            parts.append(chunk.text)
            tokens = max(tokens, chunk.prompt_tokens + chunk.completion_tokens)  # usage rides on the last chunk
        return "".join(parts), tokens

    async def embed(self, model: str, inputs: list[str], tenant_id: str) -> tuple[str, list[list[float]], int]:
        try:
            res = await self._get().Embed(pb.EmbedRequest(model=model, inputs=inputs, normalize=True),
                                          timeout=self.timeout_s, metadata=call_metadata(tenant_id=tenant_id))
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, "inference") from exc
        return res.model or model, [list(e.values) for e in res.embeddings], res.prompt_tokens

    async def list_models(self) -> list[dict]:
        try:
            res = await self._get().ListModels(pb.ListModelsRequest(), timeout=min(self.timeout_s, 10.0),
                                               metadata=call_metadata())  # for no tenant: a service token all the same
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, "inference") from exc
        return [{"name": m.name, "kind": m.kind, "backend": m.backend, "context_length": m.context_length}
                for m in res.models]

    async def register_remote(self, tenant_id: str, name: str, backend: str, base_url: str, api_key: str | None,
                              remote_model: str = "", *, vision: bool = False) -> bool:
        """Serve a workspace's remote model to that workspace's runs; True when it changed one.
        `vision`: the model reads images (llm nodes' files are forwarded to it; else refused)."""
        req = pb.RegisterRemoteModelRequest(tenant_id=tenant_id, name=name, backend=backend, base_url=base_url,
                                            api_key=api_key or "", remote_model=remote_model, vision=vision)
        try:
            res = await self._get().RegisterRemoteModel(req, timeout=min(self.timeout_s, 10.0),
                                                        metadata=call_metadata(tenant_id=tenant_id))
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, "inference") from exc
        return res.replaced

    async def remove_remote(self, tenant_id: str, name: str) -> bool:
        try:
            res = await self._get().RemoveRemoteModel(pb.RemoveRemoteModelRequest(tenant_id=tenant_id, name=name),
                                                      timeout=min(self.timeout_s, 10.0),
                                                      metadata=call_metadata(tenant_id=tenant_id))
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, "inference") from exc
        return res.removed

    async def pull(self, model: str, tenant_id: str) -> AsyncIterator[PullProgress]:
        """Pull a model into the engine's store; a refused name raises (BadRequest naming
        `model`) on the first step, before any progress. Closing the iterator cancels the RPC."""
        call = self._get().PullModel(pb.PullModelRequest(model=model), timeout=self.pull_timeout_s,
                                     metadata=call_metadata(tenant_id=tenant_id))
        try:
            async for p in call:
                yield PullProgress(p.status, p.digest, p.total, p.completed)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, "inference") from exc
        finally:
            call.cancel()
