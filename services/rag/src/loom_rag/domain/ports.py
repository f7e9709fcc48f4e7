"""The collaborators the RAG domain needs, as protocols; adapters live in clients/, storage/
and the composition root, fakes in tests.

    Embedder      texts -> vectors (inference `Embed`)
    ModelCatalog  embedding model -> its dimension (inference `ListModels`)
    FileStore     raw uploaded files (storage/)
    IngestQueue   hand a document to the ingestion work queue (JetStream)
    ProgressSink  tell watchers how a document is going (JetStream document events)
    Tokenizer     count and cut text in the embedding model's tokens
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from loom_common.events import DocumentProgress


@dataclass(frozen=True)
class Embeddings:
    model: str
    dimension: int
    vectors: list[list[float]]


class Embedder(Protocol):
    async def embed(self, model: str, texts: list[str], *, tenant_id: str) -> Embeddings:
        """Normalised vectors, one per text, in order. Raises RetryableError when unavailable."""
        ...


class ModelCatalog(Protocol):
    async def embedding_dimension(self, model: str) -> int:
        """The model's dimension; NotFound if inference does not serve it as an embedding model."""
        ...


class FileStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes:
        """The bytes under `key`; NotFound if absent."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key` (and nothing else); absent keys are fine."""
        ...

    async def delete_prefix(self, prefix: str) -> None: ...


class IngestQueue(Protocol):
    async def enqueue(self, *, tenant_id: str, dataset_id: str, document_id: str, revision: int) -> None: ...


class ProgressSink(Protocol):
    async def report(self, progress: DocumentProgress) -> None: ...


class Tokenizer(Protocol):
    def count(self, texts: list[str]) -> list[int]:
        """Tokens in each text (no special tokens)."""
        ...

    def windows(self, text: str, size: int, overlap: int) -> list[str]:
        """Cut `text` into pieces of at most `size` tokens, consecutive ones sharing `overlap`."""
        ...
