"""A streaming chat through the gateway as the cross-service tests read it: the chatflow they
create (one llm node on the model stand-in of orchestrator_testkit, `serve_held_model`) and a
reader of its SSE stream. Importable by those tests: tests/conftest.py puts this folder on the
path (pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

# start -> llm (the user's query as its prompt) -> answer: what a chat app of the gateway runs.
GATEWAY_CHAT = {"nodes": [
    {"id": "start", "data": {"type": "start"}},
    {"id": "llm", "data": {"type": "llm", "model": {"name": "fake"},
                           "prompt_template": [{"role": "user", "text": "{{#sys.query#}}"}]}},
    {"id": "ans", "data": {"type": "answer", "answer": "{{#llm.text#}}"}}],
    "edges": [{"source": "start", "target": "llm"}, {"source": "llm", "target": "ans"}]}


async def collect_sse(lines: AsyncIterator[str], events: list[tuple[int, dict]], until: str | None = None) -> None:
    """Collect (id, data) of each run event of an SSE stream (pings have no id) into `events`,
    up to and including the first event named `until` (without it: to the stream's end). The
    same `lines` may be read on by a later call."""
    seq = None
    async for line in lines:
        if line.startswith("id: "):
            seq = int(line[4:])
        elif line.startswith("data: ") and seq is not None:
            data = json.loads(line[6:])
            events.append((seq, data))
            seq = None
            if until is not None and data["event"] == until:
                return
