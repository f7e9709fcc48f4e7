"""`Embedder` and `ModelCatalog` over inference.v1 (Embed, ListModels): the shared typed client
(loom_common.clients.inference: deadline, metadata, retries of UNAVAILABLE and the like, gRPC
statuses as loom_common.errors) plus the catalog question rag asks of it.

A `RetryableError` that outlasts the client's retries redelivers the work item later; a
`PermanentError` (NOT_FOUND, INVALID_ARGUMENT) fails it.
"""

from __future__ import annotations

from loom_common.clients import inference
from loom_rag.domain.errors import InvalidArgument


class InferenceClient(inference.InferenceClient):
    async def embedding_dimension(self, model: str) -> int:
        for m in await self.list_models():
            if m.name == model:
                if m.kind != "embedding" or m.embedding_dimension <= 0:
                    raise InvalidArgument("embedding_model", f"{model!r} is not an embedding model")
                return m.embedding_dimension
        raise InvalidArgument("embedding_model", f"inference does not serve {model!r}")
