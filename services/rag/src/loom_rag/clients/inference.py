"""`Embedder` and `ModelCatalog` over inference.v1 (Embed, ListModels).

Every call has a deadline; gRPC statuses become domain errors here, at the edge:
UNAVAILABLE / DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED -> RetryableError (the work item is
redelivered later); NOT_FOUND / INVALID_ARGUMENT -> PermanentError (retrying cannot help).
"""

from __future__ import annotations

import grpc

from loom.inference.v1 import inference_pb2, inference_pb2_grpc
from loom_common.errors import PermanentError, RetryableError
from loom_common.grpc_client import call_metadata, channel
from loom_rag.domain.errors import InvalidArgument, NotFound
from loom_rag.domain.ports import Embeddings

_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
              grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED}


def _translate(exc: grpc.aio.AioRpcError, what: str) -> Exception:
    code = exc.code()
    if code in _RETRYABLE:
        return RetryableError(f"inference {what}: {code.name}: {exc.details()}")
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(f"inference {what}: {exc.details()}")
    return PermanentError(f"inference {what}: {code.name}: {exc.details()}")


class InferenceClient:
    def __init__(self, addr: str, *, timeout_s: float = 60.0):
        self.addr, self.timeout_s = addr, timeout_s
        self._stub: inference_pb2_grpc.InferenceStub | None = None
        self._channel: grpc.aio.Channel | None = None

    def _inference(self) -> inference_pb2_grpc.InferenceStub:
        if self._stub is None:  # channels bind to the running loop: make it on first use
            self._channel = channel(self.addr)
            self._stub = inference_pb2_grpc.InferenceStub(self._channel)
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def embed(self, model: str, texts: list[str], *, tenant_id: str) -> Embeddings:
        try:
            resp = await self._inference().Embed(
                inference_pb2.EmbedRequest(model=model, inputs=texts, normalize=True),
                timeout=self.timeout_s, metadata=call_metadata(tenant_id=tenant_id))
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, "Embed") from exc
        return Embeddings(model=resp.model, dimension=resp.dimension,
                          vectors=[list(e.values) for e in resp.embeddings])

    async def embedding_dimension(self, model: str) -> int:
        try:
            resp = await self._inference().ListModels(inference_pb2.ListModelsRequest(), timeout=10.0,
                                                      metadata=call_metadata())
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, "ListModels") from exc
        for m in resp.models:
            if m.name == model:
                if m.kind != "embedding" or m.embedding_dimension <= 0:
                    raise InvalidArgument("embedding_model", f"{model!r} is not an embedding model")
                return m.embedding_dimension
        raise InvalidArgument("embedding_model", f"inference does not serve {model!r}")
