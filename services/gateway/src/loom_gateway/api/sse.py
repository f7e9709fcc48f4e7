"""Server-sent events the way Dify sends them: `data: {json}` lines, `event: ping` keep-alives,
and an `id:` per run event (its seq) so a client can resume with Last-Event-ID.

A client that disconnects stops its stream, never the run: the run is handed to a watcher
that follows it to its end and records the outcome (`execution.record`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent

from loom_common.logging import get_logger
from loom_gateway.api.context import Gateway
from loom_gateway.domain.execution import Fold, StartedRun, sse_payload

log = get_logger(__name__)


def _ping() -> ServerSentEvent:
    return ServerSentEvent(event="ping", sep="\n")  # exactly Dify's `event: ping` with no data line


def response(events: AsyncIterator[dict], ping_s: float) -> EventSourceResponse:
    return EventSourceResponse(events, ping=ping_s, ping_message_factory=_ping, sep="\n",
                               headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _watch(g: Gateway, run: StartedRun, fold: Fold) -> None:
    try:
        async with asyncio.timeout(g.settings.blocking_timeout_s * 4):
            if not fold.finished:
                async for ev in g.execution.bus.events(run.run_id, fold.last_seq):
                    fold.add(ev, run.chat)
                    if fold.finished:
                        break
        if fold.finished:
            await g.execution.record(run.run_id, fold)
    except Exception as exc:  # a watcher must never take the gateway down
        log.warning("run watcher stopped", run_id=run.run_id, error=repr(exc))


def hand_off(g: Gateway, run: StartedRun, fold: Fold) -> None:
    task = asyncio.create_task(_watch(g, run, fold))
    g.watchers.add(task)
    task.add_done_callback(g.watchers.discard)


async def run_events(g: Gateway, run: StartedRun, after_seq: int = 0) -> AsyncIterator[dict]:
    """The SSE event dicts for one run, from after_seq to its end; records the end."""
    fold = Fold(last_seq=after_seq)
    recorded = False
    events = g.execution.bus.events(run.run_id, after_seq)
    try:
        while not fold.finished:
            # Pings keep a stream alive, so a run that never progresses (no orchestrator took it,
            # or its worker died for good) would hold the client forever: end it after a quiet spell.
            try:
                ev = await asyncio.wait_for(anext(events), g.settings.stream_idle_timeout_s)
            except StopAsyncIteration:
                break
            except TimeoutError:
                yield {"data": json.dumps({"event": "error", "task_id": run.run_id, "status": 504,
                                           "code": "run_timeout", "message": "the run sent no event for "
                                           f"{g.settings.stream_idle_timeout_s:.0f} s"})}
                return
            fold.add(ev, run.chat)
            payload = sse_payload(run, ev)
            if payload is not None:
                yield {"id": str(ev.seq), "data": json.dumps(payload, ensure_ascii=False)}
        if after_seq == 0:  # a resumed stream has not seen the whole answer: the watcher records
            await g.execution.record(run.run_id, fold)
            recorded = True
    finally:
        if not recorded:
            # Cancelled (client gone) or resumed: follow the run to its end in the background.
            hand_off(g, run, Fold() if after_seq else fold)
        with contextlib.suppress(Exception):
            await events.aclose()
