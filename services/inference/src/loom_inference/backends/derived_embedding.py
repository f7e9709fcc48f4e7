"""The bundled MiniLM served without torch: ONNX Runtime, or its static model2vec table.

    OnnxEmbedder    all-minilm:l6-v2 through ONNX Runtime (int8 weights where the CPU has an
                    int8 dot product, float32 elsewhere), with dynamic
                    length-bucketed batching across concurrent requests (engine/embed_batching)
    StaticEmbedder  all-minilm:l6-v2-static: a model2vec table (a token's vector is a row;
                    a text's is the mean of its tokens'), ~100x faster, lower quality, 256-d

Both load their derived model from the cache (backends/minilm_derived builds it once, in a
child process, on first use) on their own thread, so start-up does not wait and the service
never imports torch.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from loom_inference.backends.minilm_derived import MAX_TOKENS, ONNX_FILES, ONNX_QUANTIZATION, ensure, onnx_precision
from loom_inference.engine.embed_batching import DynamicBatcher
from loom_inference.engine.types import BackendError, EmbedResult, ModelInfo


def _normalised(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


class _CachedModel:
    """Load-once plumbing shared by both: one worker thread, load on first need."""

    kind = ""

    def __init__(self, info: ModelInfo, cache_dir: Path, *, threads: int = 0) -> None:
        self.info, self.cache_dir, self.threads = info, Path(cache_dir), threads
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{info.name}")
        self._loading: asyncio.Future | None = None

    def _load(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        if self._loading is None:
            self._loading = asyncio.get_running_loop().run_in_executor(self._pool, self._load)

    async def ready(self) -> None:
        await self.start()
        try:
            await asyncio.shield(self._loading)  # type: ignore[arg-type]
        except Exception as exc:
            raise BackendError(f"embedding model {self.info.name} failed to load: {exc!r}") from exc

    async def close(self) -> None:
        self._pool.shutdown(wait=False)


class OnnxEmbedder(_CachedModel):
    kind = "onnx"

    def __init__(self, info: ModelInfo, cache_dir: Path, *, threads: int = 0, max_batch: int = 64,
                 max_batch_tokens: int = 8192, precision: str = "auto") -> None:
        super().__init__(info, cache_dir, threads=threads)
        self.precision = onnx_precision(precision)
        self._session = None
        self._tokenizer = None
        self.batcher = DynamicBatcher(self._run, self._pool, max_batch=max_batch, max_batch_tokens=max_batch_tokens)

    def _load(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = ensure("onnx", self.cache_dir)
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tok.no_padding()  # the batcher pads each bucket to its own longest
        tok.enable_truncation(MAX_TOKENS)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads or (os.cpu_count() or 1)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting between operators: on a shared box spinning threads take CPU from the
        # other services (measured under load: 21 texts/s without spinning, 14 with).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(folder / ONNX_FILES[self.precision]), opts,
                                             providers=["CPUExecutionProvider"])
        self._tokenizer = tok
        self.info.embedding_dimension, self.info.context_length = 384, MAX_TOKENS
        self.info.path, self.info.quantization = str(folder), ONNX_QUANTIZATION[self.precision]
        self.info.loaded = True

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        longest = max(len(ids) for ids in batch)
        input_ids = np.zeros((len(batch), longest), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for row, ids in enumerate(batch):
            input_ids[row, :len(ids)] = ids
            mask[row, :len(ids)] = 1
        assert self._session is not None
        out = self._session.run(None, {"input_ids": input_ids, "attention_mask": mask,
                                       "token_type_ids": np.zeros_like(input_ids)})[0]
        return out.astype(np.float32, copy=False)

    def tokenize(self, inputs: list[str]) -> list[list[int]]:
        assert self._tokenizer is not None
        return [e.ids for e in self._tokenizer.encode_batch(inputs)]

    async def embed(self, inputs: list[str], *, normalize: bool = True) -> EmbedResult:
        await self.ready()
        ids = self.tokenize(inputs)  # Rust, fast: the event loop does not notice it
        rows = await self.batcher.embed(ids)
        rows = _normalised(rows) if normalize else rows
        return EmbedResult(self.info.name, rows.shape[1] if len(rows) else 384, rows.tolist(),
                           sum(len(i) for i in ids))

    async def close(self) -> None:
        await self.batcher.close()
        await super().close()


class StaticEmbedder(_CachedModel):
    kind = "static"

    def __init__(self, info: ModelInfo, cache_dir: Path, *, threads: int = 0) -> None:
        super().__init__(info, cache_dir, threads=threads)
        self._model = None

    def _load(self) -> None:
        from model2vec import StaticModel

        folder = ensure("static", self.cache_dir)
        self._model = StaticModel.from_pretrained(str(folder))
        self.info.embedding_dimension = int(self._model.dim)
        self.info.context_length, self.info.path, self.info.loaded = MAX_TOKENS, str(folder), True

    async def embed(self, inputs: list[str], *, normalize: bool = True) -> EmbedResult:
        await self.ready()

        def run():
            assert self._model is not None
            rows = np.asarray(self._model.encode(inputs, max_length=MAX_TOKENS, use_multiprocessing=False),
                              dtype=np.float32)
            # The count only: the fast batch encoder skips the offsets encode_batch would track.
            tokens = sum(len(e.ids) for e in self._model.tokenizer.encode_batch_fast(inputs, add_special_tokens=False))
            return rows, tokens

        rows, tokens = await asyncio.get_running_loop().run_in_executor(self._pool, run)
        rows = _normalised(rows) if normalize else rows
        return EmbedResult(self.info.name, rows.shape[1] if len(rows) else self.info.embedding_dimension,
                           rows.tolist(), tokens)
