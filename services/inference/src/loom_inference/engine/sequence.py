"""One request inside the engine: its tokens, its KV slot, its status and its clock."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from loom_inference.engine.types import FinishReason, SamplingParams


class SequenceStatus(enum.IntEnum):
    """Ordered, so `status >= FINISHED_STOPPED` means finished."""

    WAITING = 0            # in the waiting queue, no KV slot yet
    RUNNING = 1            # holds a slot; prefilling until num_computed == len(prompt_ids)
    FINISHED_STOPPED = 2
    FINISHED_LENGTH = 3
    FINISHED_ABORTED = 4
    FINISHED_ERROR = 5

    @property
    def finished(self) -> bool:
        return self >= SequenceStatus.FINISHED_STOPPED

    @property
    def reason(self) -> FinishReason | None:
        return {SequenceStatus.FINISHED_STOPPED: FinishReason.STOP,
                SequenceStatus.FINISHED_LENGTH: FinishReason.LENGTH,
                SequenceStatus.FINISHED_ABORTED: FinishReason.ABORTED,
                SequenceStatus.FINISHED_ERROR: FinishReason.ERROR}.get(self)


@dataclass
class EngineRequest:
    """What the engine core runs: already tokenized, already templated."""

    request_id: str
    prompt_ids: list[int]
    sampling: SamplingParams
    max_tokens: int                  # resolved cap (never None inside the core)
    grammar: str | None = None       # GBNF text; None = unconstrained


@dataclass
class Sequence:
    req: EngineRequest
    status: SequenceStatus = SequenceStatus.WAITING
    slot: int = -1                   # llama.cpp seq_id while RUNNING
    num_computed: int = 0            # prompt tokens already in the KV cache
    reused: int = 0                  # of which were found there (a cached prefix), not computed
    kv_len: int = 0                  # prompt + output tokens in the slot's KV cells
    output_ids: list[int] = field(default_factory=list)
    error: str = ""
    # perf_counter() stamps for the timings each response reports.
    arrived: float = field(default_factory=time.perf_counter)
    scheduled: float = 0.0
    first_token: float = 0.0
    last_token: float = 0.0
    finished_at: float = 0.0

    @property
    def request_id(self) -> str:
        return self.req.request_id

    @property
    def prompt_len(self) -> int:
        return len(self.req.prompt_ids)

    @property
    def prefilled(self) -> bool:
        return self.num_computed >= self.prompt_len

    @property
    def reserved_tokens(self) -> int:
        """KV cells this sequence may need at most: what admission control counts."""
        return self.prompt_len + self.req.max_tokens

    def finish(self, status: SequenceStatus, error: str = "") -> None:
        if not self.status.finished:
            self.status, self.error = status, error
            self.finished_at = time.perf_counter()
