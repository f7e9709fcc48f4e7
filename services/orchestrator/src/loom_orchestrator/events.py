"""The run's ordered event stream on `run.<run_id>.events`.

`RunEventPublisher.emit` numbers an event (seq 1, 2, 3, ... across redeliveries: a resumed
run continues from the last seq found on the subject) and queues it; one sender task
writes the queue to the connection in order, and a confirmer task checks the JetStream
acks in order, so seq order is wire order even when concurrent branches emit at once, the
engine never waits on the bus, and no event waits for an earlier event's ack.

Every event is typed (`loom_common.events.runs`): `emit(name, fields)` builds the payload model
named `name`, so a field the contract lacks fails the producer, never a reader. An unacked event
is published again (`REPUBLISH_POLICY`) until the run's deadline; one still unstored then is
counted in `lost`, and the worker records the run failed (`worker.py`) rather than succeeded.
The publisher also keeps what the run's outcome needs of its events (`RunFinished`): the first
answer text's time, the answer streamed and the agent's thoughts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any

from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from loom_common import bus, messaging
from loom_common.errors import RetryableError, Superseded
from loom_common.events import RunEvent, RunFinished
from loom_common.events.runs import AgentThought, Message, TextChunk, WorkflowFinished, run_event_data
from loom_common.logging import get_logger
from loom_common.retry import RetryPolicy
from loom_common.telemetry import outgoing_headers

log = get_logger(__name__)

ACK_TIMEOUT_S = 5.0
# An unacked event is published again with this back-off until it is stored or the run's
# deadline passes (no count of tries: five, about 30 s, lost the events of live runs while a
# JetStream cluster elected a new stream leader). The run's lease bounds it too: a worker that
# lost the run stops at once.
REPUBLISH_POLICY = RetryPolicy(initial_interval_s=0.2, backoff_coefficient=2.0, maximum_interval_s=2.0,
                               maximum_attempts=None)
# The least patience an event gets, even past the run's deadline (the final events of a run that
# used all its wall time are published after it).
MIN_PATIENCE_S = 30.0
# Used when a publisher is not told the run's deadline (tests, a paused run's stop).
DEFAULT_PATIENCE_S = 120.0


class _NotStored(RetryableError):
    code = "bus_unavailable"


def announces_end(last: RunEvent, *, chat: bool) -> bool:
    """Whether `last` is a run's final event (workflow.py's `_finish`): message_end in a chat
    that did not fail, else workflow_finished."""
    if last.event == "message_end":
        return True
    return isinstance(last.data, WorkflowFinished) and (not chat or last.data.status == "failed")


async def cancel_requested(broker: NatsBroker, run_id: str) -> str | None:
    """A stop published before this worker took the run (kept by the RUN_CONTROL stream)."""
    from loom_common.events import RunCancelRequested

    js = broker.connection.jetstream()
    try:
        msg = await js.get_last_msg(bus.RUN_CONTROL.name, bus.run_cancel(run_id))
    except Exception:
        return None
    try:
        return RunCancelRequested.model_validate_json(msg.data).reason
    except ValueError:
        return "stopped"


def _jetstream(broker: NatsBroker) -> JetStreamContext:
    """One JetStream context per connection: each holds the reply subscription that async
    publishes share, so a context per run would leak one subscription per run."""
    nc = broker.connection
    js = _CONTEXTS.get(nc)
    if js is None:
        js = _CONTEXTS[nc] = nc.jetstream()
    return js


_CONTEXTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class RunEventPublisher:
    """Pipelined, in order. The sender writes each event to the connection as soon as it is
    emitted, without waiting for the previous event's ack (NATS keeps one connection's
    messages in order, and the stream stores them in that order); the confirmer awaits the
    acks in seq order and republishes an event whose ack failed or timed out, with back-off
    (the stream dedups on event_id, so a republished event that had in fact been stored is
    not doubled). So a token's event waits for no earlier event's round trip. The one case
    that can break wire order: an event refused by the server while later ones were stored;
    it is then stored after them when a retry succeeds (readers that need order use seq)."""

    def __init__(self, broker: NatsBroker, run_id: str, tenant_id: str, start_seq: int = 0,
                 guard: Callable[[], None] | None = None, muted: bool = False,
                 deadline: float | None = None) -> None:
        self.broker, self.run_id, self.tenant_id = broker, run_id, tenant_id
        # time.monotonic() by which an unstored event is given up (at least MIN_PATIENCE_S after
        # its first try); None: DEFAULT_PATIENCE_S after it.
        self.deadline = deadline
        self.lost: list[int] = []  # seqs of events given up unstored: the run must not succeed
        # What the run's outcome takes from its events (complete only if this publisher numbered
        # them all: a run resumed on another worker replays its nodes without announcing them).
        self.complete = start_seq == 0
        self.first_text_at: datetime | None = None
        self.streamed: list[str] = []
        self.thoughts: list[AgentThought] = []
        # Muted: the run's end is already on the subject (a redelivery after the events were
        # flushed, before the outcome was recorded): everything it would announce was announced.
        self.muted = muted
        self._guard = guard  # raises once this worker no longer holds the run (lease.Lease.check)
        self.seq = start_seq
        self.subject = bus.run_events(run_id)
        # Trace context and ids of the run, made once (every event of a run carries the same).
        self._headers = {**outgoing_headers(tenant_id=tenant_id, run_id=run_id), "content-type": "application/json"}
        self._queue: asyncio.Queue[RunEvent | None] = asyncio.Queue()
        self._acks: asyncio.Queue[tuple[RunEvent, asyncio.Future | None, float] | None] = asyncio.Queue()
        self._sender = asyncio.create_task(self._send_all())
        self._confirmer = asyncio.create_task(self._confirm_all())

    def emit(self, event: str, data: dict[str, Any], node_id: str | None = None) -> None:
        if self.muted:
            return
        payload = run_event_data(event, data)  # the typed contract: a wrong field fails here
        self.seq += 1
        ev = RunEvent(tenant_id=self.tenant_id, run_id=self.run_id, seq=self.seq, task_id=self.run_id,
                      node_id=node_id, data=payload)
        if isinstance(payload, Message | TextChunk):
            self.first_text_at = self.first_text_at or ev.occurred_at
            self.streamed.append(payload.answer if isinstance(payload, Message) else payload.text)
        elif isinstance(payload, AgentThought):
            self.thoughts.append(payload)
        self._queue.put_nowait(ev)

    async def _send_all(self) -> None:
        js = _jetstream(self.broker)
        try:
            while (event := await self._queue.get()) is not None:
                if self._guard is not None:
                    try:
                        self._guard()
                    except Superseded:  # another worker may own the run: its events are its own now
                        log.warning("run events dropped: the run's lease is lost", from_seq=event.seq)
                        return
                try:
                    ack = await js.publish_async(self.subject, event.model_dump_json().encode(),
                                                 stream=bus.RUN_EVENTS.name,
                                                 headers={**self._headers, "Nats-Msg-Id": event.event_id})
                except Exception as exc:  # not even written: the confirmer publishes it the slow way
                    log.warning("run event not sent", seq=event.seq, error=repr(exc))
                    ack = None
                self._acks.put_nowait((event, ack, asyncio.get_running_loop().time() + ACK_TIMEOUT_S))
        finally:
            self._acks.put_nowait(None)

    async def _confirm_all(self) -> None:
        loop = asyncio.get_running_loop()
        while (item := await self._acks.get()) is not None:
            event, ack, deadline = item
            try:
                if ack is None:
                    raise RuntimeError("not sent")
                # Each ack's timeout runs from its own send: when a NATS node dies with many acks
                # in flight, they expire together, not one ACK_TIMEOUT_S after another.
                await asyncio.wait_for(ack, max(0.0, deadline - loop.time()))
            except Exception as exc:
                if not self._still_ours(event):
                    return
                log.warning("run event not acked; publishing it again", seq=event.seq, error=repr(exc))
                await self._republish(event)

    def _still_ours(self, event: RunEvent) -> bool:
        """The run's lease is still this worker's: a worker that lost it republishes nothing, or
        its old events could land after the new owner numbered on from the stream's last seq."""
        if self._guard is None:
            return True
        try:
            self._guard()
        except Superseded:
            log.warning("run events not republished: the run's lease is lost", from_seq=event.seq)
            return False
        return True

    async def _republish(self, event: RunEvent) -> None:
        now = time.monotonic()
        deadline = max(self.deadline, now + MIN_PATIENCE_S) if self.deadline is not None \
            else now + DEFAULT_PATIENCE_S
        tries = 0

        async def publish() -> None:
            nonlocal tries
            if tries and not self._still_ours(event):
                raise Superseded("the run's lease is lost")
            tries += 1
            try:
                await messaging.publish(self.broker, self.subject, event, stream=bus.RUN_EVENTS.name,
                                        timeout_s=ACK_TIMEOUT_S)
            except Exception as exc:  # whatever failed, the same event under its id may be sent again
                log.warning("run event not published", seq=event.seq, attempt=tries, error=repr(exc))
                raise _NotStored(repr(exc)) from exc

        try:
            await REPUBLISH_POLICY.call(publish, deadline=deadline)
        except Superseded:
            return
        except _NotStored as exc:
            self.lost.append(event.seq)
            log.error("run event lost: not published by the run's deadline", seq=event.seq, attempts=tries,
                      error=str(exc))

    async def flush(self) -> None:
        """Publish everything emitted so far and wait for its acks (or its give-up: `lost`), then stop."""
        self._queue.put_nowait(None)
        await self._sender
        await self._confirmer

    async def close(self) -> None:
        for task in (self._sender, self._confirmer):
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(self._sender, self._confirmer, return_exceptions=True)


def finished_event(events: RunEventPublisher, *, status: str, answer: str, outputs: dict[str, Any],
                   error: str | None, prompt_tokens: int, completion_tokens: int, steps: int, elapsed_s: float,
                   metadata: dict[str, Any] | None, conversation_variables: dict[str, Any] | None,
                   form_ids: list[str] | None = None, error_code: str = "workflow_failed") -> RunFinished:
    """The run's outcome as `runs.finished` carries it; its id names the run, the status and the
    last seq, so a republish of the same end is stored once."""
    if events.complete and events.streamed:
        answer = "".join(events.streamed)  # what the client was shown, as the gateway folds it
    return RunFinished(
        event_id=f"{events.run_id}.{status}.{events.seq}", tenant_id=events.tenant_id, run_id=events.run_id,
        status=status, answer=answer, outputs=outputs, error=error,
        error_code=error_code if status == "failed" else None,
        usage={"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
               "total_tokens": prompt_tokens + completion_tokens},
        total_steps=steps, elapsed_time=elapsed_s, metadata=metadata,
        conversation_variables=conversation_variables, agent_thoughts=events.thoughts,
        first_text_at=events.first_text_at, form_ids=form_ids or [], last_seq=events.seq)


async def publish_finished(broker: NatsBroker, finished: RunFinished, deadline: float | None = None) -> None:
    """Store the run's outcome on `runs.finished`, retried until `deadline` (at least
    MIN_PATIENCE_S): raises if it could not be, so the run's message is not acked and the run
    is redelivered (its end then published again)."""
    now = time.monotonic()
    until = max(deadline, now + MIN_PATIENCE_S) if deadline is not None else now + DEFAULT_PATIENCE_S

    async def publish() -> None:
        try:
            await messaging.publish(broker, bus.RUNS_FINISHED, finished, stream=bus.RUN_OUTCOMES.name,
                                    timeout_s=ACK_TIMEOUT_S)
        except RetryableError:
            raise
        except Exception as exc:
            raise _NotStored(repr(exc)) from exc

    await REPUBLISH_POLICY.call(publish, deadline=until)
