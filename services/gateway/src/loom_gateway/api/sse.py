"""Server-sent events the way Dify sends them: `data: {json}` lines, `event: ping` keep-alives,
and an `id:` per run event (its seq) so a client can resume with Last-Event-ID.

This module alone turns the run-event contract (`loom_common.events.runs`, typed) into Dify's
wire objects (`sse_payload`, `blocking_body`), and owns the one loop that waits on a run's
events (`follow`) for every route that streams or blocks on a run.

A client that disconnects stops its stream, never the run; the run's outcome is recorded from
`runs.finished` by the gateway's durable consumer (`bus/outcomes.py`) whether or not anyone
watched. A stream that read the whole run records it at once too (idempotent), so the client's
next read finds it.

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
from typing import Any

from loom_common import messaging
from loom_common.events import RunEvent, RunEventUnreadable
from loom_common.events.runs import (
    AgentThought,
    Message,
    MessageEnd,
    RunError,
    TextChunk,
    WorkflowFinished,
    WorkflowStarted,
)
from loom_common.logging import get_logger
from loom_common.retry import RetryPolicy
from loom_gateway.api import timing
from loom_gateway.api.context import Gateway
from loom_gateway.api.event_stream import DIFY_PING, EventStream
from loom_gateway.domain.errors import Upstream
from loom_gateway.domain.execution import Fold, StartedRun
from loom_gateway.store.apps import dify_mode

log = get_logger(__name__)

# Dify's basic apps (chat, agent, completion) stream message-level events only: the workflow
# and node events are what chatflow ("advanced-chat") and workflow apps add.
_MESSAGE_ONLY_MODES = ("chat", "agent")
# Events whose Dify payload is flat (fields at the top level); workflow events nest under `data`.
_FLAT = (Message, MessageEnd, AgentThought, RunError)
# What message_end carries for the gateway's records only, never shown to the client.
_RECORD_ONLY = {"type", "conversation_variables"}
# Fields Dify leaves out where they do not apply (a node outside any iteration or loop).
_OMITTED_WHEN_NONE = ("iteration_id", "loop_id")


class RunTimeout(Upstream):
    """The run sent no event for the stream's idle spell, or did not end within a blocking
    call's wait: the run goes on, its outcome is recorded when it ends."""

    status, code = 504, "run_timeout"


class RunFeedFailed(Upstream):
    """The bus failed under the run's event feed (or sent an event this gateway cannot read)."""

    status, code = 503, "service_unavailable"


# ---- Dify's wire shapes ---------------------------------------------------------------------


def _fields(ev: RunEvent) -> dict[str, Any]:
    out = ev.data.model_dump(exclude=_RECORD_ONLY)
    for key in _OMITTED_WHEN_NONE:
        if key in out and out[key] is None:
            del out[key]
    if isinstance(ev.data, MessageEnd) and ev.data.metadata.annotation_reply is None:
        out["metadata"].pop("annotation_reply", None)
    return out


def sse_payload(run: StartedRun, ev: RunEvent) -> dict[str, Any] | None:
    """A run event as Dify's SSE `data` object (None: not part of this app mode's API)."""
    d, name = ev.data, ev.event
    if run.mode == "completion":  # Dify's message events: text chunks are messages, the end message_end
        if isinstance(d, TextChunk):
            d, name = Message(answer=d.text), "message"
        elif isinstance(d, WorkflowFinished) and d.status != "failed":
            return {**_message_base(run, "message_end"),
                    "metadata": {"usage": {"total_tokens": d.total_tokens}}}
        elif not isinstance(d, _FLAT):  # a failed run's end is the `error` before it
            return None
    elif run.mode in _MESSAGE_ONLY_MODES:
        if not isinstance(d, _FLAT):
            return None
        if run.mode == "agent" and isinstance(d, Message):  # Dify's agent apps stream their answer so
            name = "agent_message"
    if isinstance(d, _FLAT):
        base = _message_base(run, name) if run.chat or run.mode == "completion" \
            else {"event": name, "task_id": run.run_id}
        if isinstance(d, RunError):
            return {**base, "status": d.status, "code": d.code, "message": d.message}
        # The gateway's ids win over the event's: one message id everywhere (the stored one, which
        # feedback and suggestions look up); a thought's own `id` stays.
        ids = {k: v for k, v in base.items() if not (k == "id" and isinstance(d, AgentThought))}
        fields = _fields(ev) if d is ev.data else {"answer": d.answer}  # (a completion's chunk as message)
        return {**base, **fields, **ids}
    data = _fields(ev)
    if isinstance(d, WorkflowStarted | WorkflowFinished):
        data["id"] = data.get("id") or run.run_id
        data.setdefault("workflow_id", run.app_id)
    base = {"event": name, "task_id": run.run_id}
    if run.chat:
        base.update(id=run.message_id, message_id=run.message_id, created_at=run.created_at)
        if run.conversation_id:
            base["conversation_id"] = run.conversation_id
    return {**base, "workflow_run_id": run.run_id, "data": data}


def _message_base(run: StartedRun, name: str) -> dict[str, Any]:
    base: dict[str, Any] = {"event": name, "task_id": run.run_id, "id": run.message_id,
                            "message_id": run.message_id, "created_at": run.created_at}
    if run.conversation_id:
        base["conversation_id"] = run.conversation_id
    return base


def blocking_body(run: StartedRun, fold: Fold) -> dict[str, Any]:
    """A blocking call's answer (Dify's): the workflow run's record, or the message."""
    paused = {"human_inputs": list(fold.human_inputs.values())} if fold.paused else {}
    if run.workflow_only:
        return {"workflow_run_id": run.run_id, "task_id": run.run_id,
                "data": {"id": run.run_id, "workflow_id": run.app_id, "status": fold.status,
                         "outputs": fold.outputs or {}, "error": fold.error, "elapsed_time": fold.elapsed_time,
                         "total_tokens": fold.total_tokens, "total_steps": fold.total_steps,
                         "created_at": run.created_at, "finished_at": None if fold.paused else int(time.time()),
                         **paused}}
    body = {"event": "message", "task_id": run.run_id, "id": run.message_id, "message_id": run.message_id,
            "mode": dify_mode(run.mode), "answer": fold.answer,
            "metadata": {"usage": {}, "retriever_resources": [], **fold.metadata}, "created_at": run.created_at}
    if run.conversation_id:
        body["conversation_id"] = run.conversation_id
    if fold.paused:  # the answer so far; the rest comes once a person answered (GET /v1/runs/{id}/events)
        body.update(status="paused", **paused)
    return body


# ---- following a run ------------------------------------------------------------------------


def response(events: AsyncIterator[bytes | dict], ping_s: float) -> EventStream:
    return EventStream(events, ping_s=ping_s, ping=DIFY_PING, headers={"Cache-Control": "no-cache"})


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


# Reopening a broken feed: 0.2 s, 0.4 s, ... up to 5 s apart, within the stream's idle budget.
_FEED_RETRY = RetryPolicy(initial_interval_s=0.2, maximum_interval_s=5.0, maximum_attempts=None)


class Reading:
    """The feed `follow` reads from now, for a caller that writes what is ready in one go."""

    def __init__(self) -> None:
        self.feed: Any = None

    def more_ready(self) -> bool:
        """Another event can be had without waiting for the bus (the rest of a batch)."""
        return bool(getattr(self.feed, "ready", False))


def take_feed(g: Gateway, run: StartedRun, after_seq: int = 0):
    """The run's events after after_seq: the feed its start opened, else a new subscription."""
    feed, run.feed = run.feed, None
    if feed is not None and after_seq == 0:
        return feed
    if feed is not None:
        asyncio.get_running_loop().create_task(feed.aclose())
    return g.execution.bus.events(run.run_id, after_seq)


def _observe_arrival(run: StartedRun, ev: RunEvent, received: float) -> None:
    if run.published_at is not None:  # a run this request started: how long the first event took
        timing.FIRST_EVENT.observe(received - run.published_at)
        run.published_at = None
    timing.EVENT_LAG.observe(max(0.0, time.time() - ev.occurred_at.timestamp()))


class _FeedBroke(Exception):
    """The feed's own bus request failed (a timeout included): not the run's silence."""


async def _next_event(events) -> RunEvent:
    # nats-py's timeouts are TimeoutErrors too: one from the bus (creating the ordered consumer
    # while a stream elects its leader) must not read as the run sending nothing for idle_s.
    try:
        return await anext(events)
    except TimeoutError as exc:
        raise _FeedBroke(repr(exc)) from exc


async def follow(g: Gateway, run: StartedRun, fold: Fold, after_seq: int = 0, *,
                 within_s: float | None = None, reading: Reading | None = None) -> AsyncIterator[RunEvent]:
    """The run's events after `after_seq`, each folded into `fold` before it is yielded, until
    the run ends or pauses for now. Raises RunTimeout after `stream_idle_timeout_s` without an
    event (a stream: pings keep it alive, so a run that never progresses, with no orchestrator to
    take it or its worker gone for good, would hold a client forever) or, with `within_s`, once
    that long has passed in all (a blocking call); RunFeedFailed if the bus fails under it.
    `reading` is told the feed read from."""
    reading = reading or Reading()
    events = reading.feed = take_feed(g, run, after_seq)
    idle_s = g.settings.stream_idle_timeout_s
    loop = asyncio.get_running_loop()
    give_up = None if within_s is None else loop.time() + within_s
    quiet_since, failures = loop.time(), 0
    try:
        while not fold.finished:
            wait = idle_s if give_up is None else give_up - loop.time()
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for wraps each wait in a task
                # of its own, a task per event of every stream.
                async with asyncio.timeout(max(0.0, wait)):
                    ev = await _next_event(events)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise RunTimeout(f"the run sent no event for {idle_s:.0f} s" if give_up is None else
                                 "The run did not finish in time; follow it with GET /v1/workflows/run/{id}.") from None
            except RunEventUnreadable as exc:
                log.error("unreadable run event", run_id=run.run_id, error=str(exc))
                raise RunFeedFailed(f"the run's events cannot be read by this gateway: {exc}") from None
            except Exception as exc:  # the bus failed under the feed; the run goes on without us
                # A NATS node lost (its streams electing a new leader) breaks the feed for a few
                # seconds to a minute: open it again from the last event this client got, within
                # the same budgets as a quiet run, so the client never sees the hiccup.
                failures += 1
                pause = _FEED_RETRY.delay_for(failures)
                deadline = quiet_since + idle_s if give_up is None else give_up
                if loop.time() + pause >= deadline:
                    log.warning("run feed failed", run_id=run.run_id, error=repr(exc), tries=failures)
                    raise RunFeedFailed("the run's event feed failed; the run goes on: read its outcome later or "
                                        "reconnect with Last-Event-ID") from None
                log.info("run feed broke; opening it again", run_id=run.run_id, error=repr(exc),
                         after_seq=fold.last_seq, tries=failures)
                with contextlib.suppress(Exception):
                    await events.aclose()
                await asyncio.sleep(pause)
                events = reading.feed = take_feed(g, run, max(after_seq, fold.last_seq))
                continue
            quiet_since, failures = loop.time(), 0
            received = time.perf_counter()
            _observe_arrival(run, ev, received)
            fold.add(ev, run.chat)
            yield ev
            if await paused_for_now(g, run, fold, ev.seq):
                return
    finally:
        with contextlib.suppress(Exception):
            await events.aclose()


async def record(g: Gateway, run: StartedRun, fold: Fold) -> None:
    """Record what a client read to the run's end (or pause) at once, so its next read finds it
    (the durable consumer records the same end too; the first record wins). Shielded: a client
    leaving now must not cut the write off mid-transaction."""
    if fold.finished or fold.paused:
        await asyncio.shield(g.execution.record(run.run_id, fold))


def _error(run: StartedRun, status: int, code: str, message: str) -> dict:
    """Dify's in-stream error event: the stream's last, once the status line is sent."""
    return {"data": json.dumps({"event": "error", "task_id": run.run_id, "status": status, "code": code,
                                "message": message})}


def _frame(seq: int, payload: dict[str, Any]) -> bytes:
    """One SSE event (compact JSON has no line breaks to split)."""
    return f"id: {seq}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


async def run_events(g: Gateway, run: StartedRun, after_seq: int = 0) -> AsyncIterator[bytes | dict]:
    """The SSE frames for one run, from after_seq to its end (or its pause). The frames of
    events that arrived together (a batch) go out as one write."""
    fold = Fold(last_seq=after_seq)
    reading = Reading()
    frames: list[bytes] = []
    received: list[float] = []

    def written() -> None:  # the stream asks for the next item once the frames were handed over
        now = time.perf_counter()
        for t in received:
            timing.RELAY.observe(now - t)
        frames.clear()
        received.clear()

    try:
        async for ev in follow(g, run, fold, after_seq, reading=reading):
            payload = sse_payload(run, ev)
            if payload is not None:
                received.append(time.perf_counter())
                frames.append(_frame(ev.seq, payload))
            if frames and not reading.more_ready():
                yield b"".join(frames)
                written()
    except Upstream as exc:
        if frames:
            yield b"".join(frames)
            written()
        yield _error(run, exc.status, exc.code, exc.message)
        return
    if frames:
        yield b"".join(frames)
        written()
    if after_seq == 0:  # a resumed stream has not seen the whole answer: runs.finished records it
        await record(g, run, fold)
