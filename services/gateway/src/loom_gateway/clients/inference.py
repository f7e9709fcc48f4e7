"""inference.v1 client for the OpenAI-compatible API: Generate (streamed), Embed, ListModels;
the workspace model endpoints' registration (RegisterRemoteModel, RemoveRemoteModel); and the
console's model pull (PullModel, its progress streamed).

Plain dataclasses go in and out, so the OpenAI router never touches protobuf. The transport is
the shared typed client (loom_common.clients.inference: lazy channel, deadline, metadata,
retries of retryable statuses, the finish-reason map); its errors become the gateway's API
errors here (clients/errors.py). Cancelling the async iterator of `generate` cancels the RPC,
which aborts the sequence in the engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from loom.inference.v1 import inference_pb2 as pb
from loom_common.clients import inference
from loom_common.clients.inference import Chunk, PullProgress
from loom_common.clients.inference import ToolCall as ToolCallOut
from loom_common.errors import LoomError
from loom_gateway.clients.errors import api_error

__all__ = ["Chunk", "GenerateArgs", "InferenceClient", "PullProgress", "ToolCallOut"]


@dataclass
class GenerateArgs:
    model: str
    messages: list[dict]          # {role, content, name?, tool_call_id?, tool_calls?: [{id, name, arguments}]}
    sampling: dict                # temperature, top_p, seed, max_tokens, stop
    tools: list[dict] = field(default_factory=list)   # {name, description, parameters_json}
    tool_choice: str = ""
    json_schema: str = ""
    request_id: str = ""


def _request(args: GenerateArgs) -> pb.GenerateRequest:
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
    return req


class InferenceClient:
    def __init__(self, addr: str, timeout_s: float, pull_timeout_s: float = inference.PULL_TIMEOUT_S):
        self.rpc = inference.InferenceClient(addr, timeout_s=timeout_s, pull_timeout_s=pull_timeout_s)

    async def close(self) -> None:
        await self.rpc.close()

    async def generate(self, args: GenerateArgs, tenant_id: str) -> AsyncIterator[Chunk]:
        stream = self.rpc.generate(_request(args), tenant_id=tenant_id)
        try:
            async for c in stream:
                if c.finish_reason == "aborted":  # OpenAI has no such reason; the client went away
                    c.finish_reason = "stop"
                yield c
        except LoomError as err:
            raise api_error(err, "inference") from err
        finally:
            await stream.aclose()

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
            res = await self.rpc.embed(model, inputs, tenant_id=tenant_id)
        except LoomError as err:
            raise api_error(err, "inference") from err
        return res.model, res.vectors, res.prompt_tokens

    async def list_models(self) -> list[dict]:
        try:
            models = await self.rpc.list_models()
        except LoomError as err:
            raise api_error(err, "inference") from err
        return [{"name": m.name, "kind": m.kind, "backend": m.backend, "context_length": m.context_length}
                for m in models]

    async def register_remote(self, tenant_id: str, name: str, backend: str, base_url: str, api_key: str | None,
                              remote_model: str = "") -> bool:
        """Serve a workspace's remote model to that workspace's runs; True when it changed one."""
        try:
            return await self.rpc.register_remote(tenant_id, name, backend, base_url, api_key, remote_model)
        except LoomError as err:
            raise api_error(err, "inference") from err

    async def remove_remote(self, tenant_id: str, name: str) -> bool:
        try:
            return await self.rpc.remove_remote(tenant_id, name)
        except LoomError as err:
            raise api_error(err, "inference") from err

    async def pull(self, model: str, tenant_id: str) -> AsyncIterator[PullProgress]:
        """Pull a model into the engine's store; a refused name raises (BadRequest naming
        `model`) on the first step, before any progress. Closing the iterator cancels the RPC."""
        stream = self.rpc.pull(model, tenant_id=tenant_id)
        try:
            async for p in stream:
                yield p
        except LoomError as err:
            raise api_error(err, "inference") from err
        finally:
            await stream.aclose()
