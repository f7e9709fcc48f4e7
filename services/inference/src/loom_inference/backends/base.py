"""The two seams every backend fits.

- `ModelRunner`: a local, batched model that executes one scheduler `Batch` per call. It is
  synchronous and is only ever called from the engine's single bridge thread.
- `Backend`: what the router talks to, one per served model name: async, request-level.
  The local engine (backends/local.py) and the remote providers implement it.
- `Embedder`: a batched embedding model (sentence-transformers, a GGUF embedding model).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from loom_inference.engine.scheduler import Batch, StepResult
from loom_inference.engine.types import Delta, EmbedResult, GenerateRequest, ModelInfo


class ModelRunner(Protocol):
    n_ctx: int            # KV cells shared by all sequences
    max_seqs: int         # parallel sequences (KV sequence ids 0..max_seqs-1)
    n_batch: int          # most tokens one decode call may carry

    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]: ...
    def token_bytes(self, token: int) -> bytes: ...
    def is_eog(self, token: int) -> bool: ...
    def execute(self, batch: Batch) -> StepResult: ...
    def chat_template(self) -> str | None: ...
    def metadata(self) -> dict[str, str]: ...
    def close(self) -> None: ...


class Backend(Protocol):
    info: ModelInfo

    async def start(self) -> None: ...
    def generate(self, req: GenerateRequest) -> AsyncIterator[Delta]: ...
    async def close(self) -> None: ...
    def load(self) -> tuple[int, int]:
        """(running, waiting) requests, for /api/ps and the router's overload decisions."""
        ...


class Embedder(Protocol):
    info: ModelInfo

    async def embed(self, inputs: list[str], *, normalize: bool = True) -> EmbedResult: ...
    async def close(self) -> None: ...
