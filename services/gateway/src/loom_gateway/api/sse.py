"""Server-sent events the way Dify sends them: `data: {json}` lines, `event: ping` keep-alives,
and an `id:` per run event (its seq) so a client can resume with Last-Event-ID.

A client that disconnects stops its stream, never the run: the run is handed to a watcher
that follows it to its end and records the outcome (`execution.record`).

A run that pauses on a human-input form ends its stream with `workflow_paused` (no connection
is held while a person takes their time); after the answer, a client reattaches with
`GET /v1/runs/{id}/events` and Last-Event-ID to read on (a pause already resumed is read through).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent

from loom_common import messaging
from loom_common.events import RunEvent
from loom_common.logging import get_logger
from loom_gateway.api import timing
from loom_gateway.api.context import Gateway
from loom_gateway.domain.execution import Fold, StartedRun, sse_payload

log = get_logger(__name__)


def _ping() -> ServerSentEvent:
    return ServerSentEvent(event="ping", sep="\n")  # exactly Dify's `event: ping` with no data line


def response(events: AsyncIterator[dict], ping_s: float) -> EventSourceResponse:
    return EventSourceResponse(events, ping=ping_s, ping_message_factory=_ping, sep="\n",
                               headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def paused_for_now(g: Gateway, run: StartedRun, fold: Fold, seq: int) -> bool:
    """The run is paused at `seq` and nothing was stored after it (the pause is not over yet)."""
    if not fold.paused:
        return False
    broker = getattr(g.execution.bus, "broker", None)
    if broker is None:
        return True
    try:
        return await messaging.last_run_event_seq(broker, run.run_id) <= seq
    except Exception:
        return True


async def _watch(g: Gateway, run: StartedRun, fold: Fold) -> None:
    try:
        async with asyncio.timeout(g.settings.blocking_timeout_s * 4):
            if not fold.finished and not fold.paused:
                async for ev in g.execution.bus.events(run.run_id, fold.last_seq):
                    fold.add(ev, run.chat)
                    if fold.finished or await paused_for_now(g, run, fold, ev.seq):
                        break
        if fold.finished or fold.paused:
            await g.execution.record(run.run_id, fold)
    except Exception as exc:  # a watcher must never take the gateway down
        log.warning("run watcher stopped", run_id=run.run_id, error=repr(exc))


def take_feed(g: Gateway, run: StartedRun, after_seq: int = 0):
    """The run's events after after_seq: the feed its start opened, else a new subscription."""
    feed, run.feed = run.feed, None
    if feed is not None and after_seq == 0:
        return feed
    if feed is not None:
        asyncio.get_running_loop().create_task(feed.aclose())
    return g.execution.bus.events(run.run_id, after_seq)


def hand_off(g: Gateway, run: StartedRun, fold: Fold) -> None:
    task = asyncio.create_task(_watch(g, run, fold))
    g.watchers.add(task)
    task.add_done_callback(g.watchers.discard)


def _error(run: StartedRun, status: int, code: str, message: str) -> dict:
    """Dify's in-stream error event: the stream's last, once the status line is sent."""
    return {"data": json.dumps({"event": "error", "task_id": run.run_id, "status": status, "code": code,
                                "message": message})}


def _observe_arrival(run: StartedRun, ev: RunEvent, received: float) -> None:
    if run.published_at is not None:  # a run this request started: how long the first event took
        timing.FIRST_EVENT.observe(received - run.published_at)
        run.published_at = None
    timing.EVENT_LAG.observe(max(0.0, time.time() - ev.occurred_at.timestamp()))


async def run_events(g: Gateway, run: StartedRun, after_seq: int = 0) -> AsyncIterator[dict]:
    """The SSE event dicts for one run, from after_seq to its end; records the end."""
    fold = Fold(last_seq=after_seq)
    recorded = False
    events = take_feed(g, run, after_seq)
    try:
        while not fold.finished:
            # Pings keep a stream alive, so a run that never progresses (no orchestrator took it,
            # or its worker died for good) would hold the client forever: end it after a quiet spell.
            try:
                ev = await asyncio.wait_for(anext(events), g.settings.stream_idle_timeout_s)
            except StopAsyncIteration:
                break
            except TimeoutError:
                yield _error(run, 504, "run_timeout",
                             f"the run sent no event for {g.settings.stream_idle_timeout_s:.0f} s")
                return
            except Exception as exc:  # the bus failed under the feed; the run goes on without us
                log.warning("run feed failed", run_id=run.run_id, error=repr(exc))
                yield _error(run, 503, "service_unavailable", "the run's event feed failed; the run goes on: "
                             "read its outcome later or reconnect with Last-Event-ID")
                return
            received = time.perf_counter()
            _observe_arrival(run, ev, received)
            fold.add(ev, run.chat)
            payload = sse_payload(run, ev)
            if payload is not None:
                yield {"id": str(ev.seq), "data": json.dumps(payload, ensure_ascii=False)}
                # sse-starlette asks for the next item once this frame was handed to the server.
                timing.RELAY.observe(time.perf_counter() - received)
            if await paused_for_now(g, run, fold, ev.seq):
                break
        if after_seq == 0:  # a resumed stream has not seen the whole answer: the watcher records
            # Shielded: a client leaving now must not cut the write off mid-transaction.
            await asyncio.shield(g.execution.record(run.run_id, fold))
            recorded = True
    finally:
        if not recorded:
            # Cancelled (client gone) or resumed: follow the run to its end in the background.
            hand_off(g, run, Fold() if after_seq else fold)
        with contextlib.suppress(Exception):
            await events.aclose()
