"""Waiting-queue policies: who gets the next free slot. FCFS is the default."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Protocol

from loom_inference.engine.sequence import Sequence
from loom_inference.engine.types import Overloaded


class WaitingQueue(Protocol):
    def push(self, seq: Sequence) -> None: ...
    def peek(self) -> Sequence | None: ...
    def pop(self) -> Sequence: ...
    def remove(self, request_id: str) -> Sequence | None: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Sequence]: ...


class FcfsQueue:
    """First come, first served, bounded: a full queue raises `Overloaded` at once, so callers
    learn immediately (RESOURCE_EXHAUSTED) instead of waiting behind an unbounded backlog."""

    def __init__(self, max_waiting: int = 256) -> None:
        self.max_waiting = max_waiting
        self._q: deque[Sequence] = deque()

    def push(self, seq: Sequence) -> None:
        if len(self._q) >= self.max_waiting:
            raise Overloaded(f"{len(self._q)} requests already waiting (max_waiting={self.max_waiting})")
        self._q.append(seq)

    def peek(self) -> Sequence | None:
        return self._q[0] if self._q else None

    def pop(self) -> Sequence:
        return self._q.popleft()

    def remove(self, request_id: str) -> Sequence | None:
        for seq in self._q:
            if seq.request_id == request_id:
                self._q.remove(seq)
                return seq
        return None

    def __len__(self) -> int:
        return len(self._q)

    def __iter__(self) -> Iterator[Sequence]:
        return iter(self._q)
