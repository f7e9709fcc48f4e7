"""The inference.v1 client every service uses (gateway, orchestrator, rag).

Requests are the generated messages (each caller builds them from its own types); answers come
back as the plain dataclasses below, finish reasons as strings (`FINISH_REASONS`, the one map).
Errors are `loom_common.errors` (`ResourceExhausted` for an engine's full queue,
`InvalidArgument` naming the field, `NotFound` for an unknown model, ...).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from loom.inference.v1 import inference_pb2 as pb
from loom.inference.v1 import inference_pb2_grpc as pb_grpc
from loom_common.clients.base import DEFAULT_RETRY, ServiceClient
from loom_common.retry import NO_RETRY, RetryPolicy

FINISH_REASONS = {pb.FINISH_REASON_STOP: "stop", pb.FINISH_REASON_LENGTH: "length",
                  pb.FINISH_REASON_TOOL_CALLS: "tool_calls", pb.FINISH_REASON_ABORTED: "aborted",
                  pb.FINISH_REASON_ERROR: "error"}

# Registration and listing answer at once; a model download may take hours.
_QUICK_S = 10.0
PULL_TIMEOUT_S = 6 * 3600.0


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


@dataclass
class Chunk:
    text: str
    model: str = ""
    finish_reason: str | None = None  # on the last chunk: stop | length | tool_calls | aborted | error
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass
class Embeddings:
    model: str
    dimension: int
    vectors: list[list[float]]
    prompt_tokens: int = 0


@dataclass
class ModelInfo:
    name: str
    kind: str  # chat | completion | embedding
    backend: str = ""
    context_length: int = 0
    embedding_dimension: int = 0


@dataclass
class PullProgress:
    status: str
    digest: str = ""
    total: int = 0  # bytes; 0 while unknown
    completed: int = 0


def chunk_of(c: pb.GenerateChunk) -> Chunk:
    return Chunk(text=c.text, model=c.model, finish_reason=FINISH_REASONS.get(c.finish_reason),
                 prompt_tokens=c.usage.prompt_tokens, completion_tokens=c.usage.completion_tokens,
                 tool_calls=[ToolCall(t.id, t.name, t.arguments_json) for t in c.tool_calls])


class InferenceClient(ServiceClient):
    service = "inference"

    def __init__(self, addr: str, *, timeout_s: float, retry: RetryPolicy = DEFAULT_RETRY,
                 pull_timeout_s: float = PULL_TIMEOUT_S) -> None:
        super().__init__(addr, timeout_s=timeout_s, retry=retry)
        self.pull_timeout_s = pull_timeout_s
        self._stub: pb_grpc.InferenceStub | None = None

    @property
    def stub(self) -> pb_grpc.InferenceStub:
        if self._stub is None:
            self._stub = pb_grpc.InferenceStub(self.channel)
        return self._stub

    async def close(self) -> None:
        self._stub = None
        await super().close()

    async def generate(self, request: pb.GenerateRequest, *, tenant_id: str | None, run_id: str | None = None,
                       timeout_s: float | None = None, retry: RetryPolicy | None = None) -> AsyncIterator[Chunk]:
        """The generation, chunk by chunk (usage rides on the last). Closing the iterator, or
        cancelling its consumer, cancels the RPC and so aborts the sequence in the engine."""
        stream = self.stream(self.stub.Generate, request, tenant_id=tenant_id, run_id=run_id,
                             timeout_s=timeout_s, retry=retry)
        try:
            async for c in stream:
                yield chunk_of(c)
        finally:
            await stream.aclose()

    async def embed(self, model: str, inputs: list[str], *, tenant_id: str | None,
                    timeout_s: float | None = None) -> Embeddings:
        res = await self.unary(self.stub.Embed, pb.EmbedRequest(model=model, inputs=inputs, normalize=True),
                               tenant_id=tenant_id, timeout_s=timeout_s)
        return Embeddings(model=res.model or model, dimension=res.dimension, prompt_tokens=res.prompt_tokens,
                          vectors=[list(e.values) for e in res.embeddings])

    async def list_models(self) -> list[ModelInfo]:
        # For no tenant: a service token all the same.
        res = await self.unary(self.stub.ListModels, pb.ListModelsRequest(), timeout_s=min(self.timeout_s, _QUICK_S))
        return [ModelInfo(name=m.name, kind=m.kind, backend=m.backend, context_length=m.context_length,
                          embedding_dimension=m.embedding_dimension) for m in res.models]

    async def register_remote(self, tenant_id: str, name: str, backend: str, base_url: str, api_key: str | None,
                              remote_model: str = "", *, vision: bool = False) -> bool:
        """Serve a workspace's remote model to that workspace's runs; True when it changed one.
        `vision`: the model reads images (llm nodes' image files are forwarded to it, else refused)."""
        req = pb.RegisterRemoteModelRequest(tenant_id=tenant_id, name=name, backend=backend, base_url=base_url,
                                            api_key=api_key or "", remote_model=remote_model, vision=vision)
        res = await self.unary(self.stub.RegisterRemoteModel, req, tenant_id=tenant_id,
                               timeout_s=min(self.timeout_s, _QUICK_S))
        return res.replaced

    async def remove_remote(self, tenant_id: str, name: str) -> bool:
        res = await self.unary(self.stub.RemoveRemoteModel,
                               pb.RemoveRemoteModelRequest(tenant_id=tenant_id, name=name), tenant_id=tenant_id,
                               timeout_s=min(self.timeout_s, _QUICK_S))
        return res.removed

    async def pull(self, model: str, *, tenant_id: str | None) -> AsyncIterator[PullProgress]:
        """Pull a model into the engine's store; a refused name raises `InvalidArgument` (field
        `model`) on the first step, before any progress. Closing the iterator cancels the RPC.
        Not retried: the console shows the failure and the user tries again."""
        stream = self.stream(self.stub.PullModel, pb.PullModelRequest(model=model), tenant_id=tenant_id,
                             timeout_s=self.pull_timeout_s, retry=NO_RETRY)
        try:
            async for p in stream:
                yield PullProgress(p.status, p.digest, p.total, p.completed)
        finally:
            await stream.aclose()
