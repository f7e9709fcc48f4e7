"""One dataset, one vector space: vectors are only comparable when one model made them.

A dataset records its embedding model and dimension when it is created; every batch of vectors
written to it, and every query vector searched in it, must come from that model. Another
model (the static all-minilm:l6-v2-static next to all-minilm:l6-v2, a remote model, a model
re-pulled under the same name with another size) is refused with EmbeddingMismatch rather than
stored: the nearest neighbours of mixed vectors mean nothing, and nothing would say so.
"""

from __future__ import annotations

from loom_rag.domain.errors import EmbeddingMismatch
from loom_rag.domain.ports import Embeddings


def base_name(model: str) -> str:
    """`name:latest` and `name` are one model (Ollama's naming)."""
    return model.removesuffix(":latest")


def check(dataset_model: str, dataset_dim: int, got: Embeddings, count: int) -> list[list[float]]:
    """`got`'s vectors if they belong to the dataset's space (model, dimension, one per text)."""
    if got.model and base_name(got.model) != base_name(dataset_model):
        raise EmbeddingMismatch(f"vectors made by {got.model!r} cannot join a dataset embedded with "
                                f"{dataset_model!r}: different models' vectors are not comparable")
    if got.dimension != dataset_dim or any(len(v) != dataset_dim for v in got.vectors):
        raise EmbeddingMismatch(f"model {dataset_model!r} returned {got.dimension}-d vectors; "
                                f"the dataset records {dataset_dim}-d")
    if len(got.vectors) != count:
        raise EmbeddingMismatch(f"model {dataset_model!r} returned {len(got.vectors)} vectors for {count} texts")
    return got.vectors
