"""In-memory Journal and EventSink: for unit tests and the engine-overhead benchmark (bench/orchestrator.py)."""

from __future__ import annotations

import copy
from typing import Any

from loom_orchestrator.engine.ports import NodeRecord


class MemoryJournal:
    def __init__(self) -> None:
        self.runs: dict[str, dict[str, NodeRecord]] = {}
        self.starts: list[str] = []  # every started key, in order (a re-run shows twice)

    async def load(self, run_id: str) -> dict[str, NodeRecord]:
        return copy.deepcopy(self.runs.get(run_id, {}))

    async def started(self, run_id: str, record: NodeRecord) -> int:
        self.starts.append(record.key)
        prev = self.runs.setdefault(run_id, {}).get(record.key)
        record.starts = (prev.starts + 1) if prev else 1
        self.runs[run_id][record.key] = copy.deepcopy(record)
        return record.starts

    async def finished(self, run_id: str, record: NodeRecord) -> None:
        self.runs.setdefault(run_id, {})[record.key] = copy.deepcopy(record)

    async def finished_many(self, run_id: str, records: list[NodeRecord]) -> None:
        for record in records:
            await self.finished(run_id, record)


class ListSink:
    """Collects events with their seq, as the bus sink would number them."""

    def __init__(self, start_seq: int = 0) -> None:
        self.seq = start_seq
        self.events: list[tuple[int, str, str | None, dict[str, Any]]] = []

    def emit(self, event: str, data: dict[str, Any], node_id: str | None = None) -> None:
        self.seq += 1
        self.events.append((self.seq, event, node_id, data))

    async def flush(self) -> None:
        return None

    def names(self) -> list[str]:
        return [e[1] for e in self.events]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [e[3] for e in self.events if e[1] == name]
