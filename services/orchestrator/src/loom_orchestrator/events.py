"""The run's ordered event stream on `run.<run_id>.events`.

`RunEventPublisher.emit` numbers an event (seq 1, 2, 3, ... across redeliveries: a resumed
run continues from the last seq found on the subject) and adds it to the open batch; a batch
is sealed `BATCH_WAIT_S` after its first event, `TEXT_WAIT_S` when that is a text delta (at
once when it holds the run's first text: the first token is never held back, and at `flush`),
then one sender task writes the sealed batches to the connection in order, and a confirmer
task checks the JetStream acks in order, so seq order is wire order even when concurrent
branches emit at once, the engine never waits on the bus, and no message waits for an earlier
message's ack.

Batching is the run path's main CPU saving: every bus message costs NATS a store and an ack,
the orchestrator a socket write and an ack future, the gateway a read. A batch of one event
goes out as a plain `RunEvent`, of several as a `RunEventBatch` (each event keeps its seq);
a node's consecutive text deltas (`message` / `text_chunk`) merge into one event of up to
`TEXT_MAX_PIECES` deltas (a multi-token chunk, as Dify itself sends). An 8-token chat run
went from 17 stored messages to about 5.

Every event is typed (`loom_common.events.runs`): `emit(name, fields)` builds the payload model
named `name`, so a field the contract lacks fails the producer, never a reader. An unacked
message is published again (`REPUBLISH_POLICY`) until the run's deadline; the events of one
still unstored then are counted in `lost`, and the worker records the run failed (`worker.py`)
rather than succeeded.
The publisher also keeps what the run's outcome needs of its events (`RunFinished`): the first
answer text's time, the answer streamed and the agent's thoughts.

`ready` holds the run's first message back until the run's claim is on disk (`store.ClaimFlush`):
the claim commits without waiting for its flush, and a redelivery after a Postgres crash that
lost it would number the run's events from 1 again. If it fails, nothing of the run is sent and
`flush` raises its error (the run is tried again from its claim).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from loom_common import bus, messaging
from loom_common.errors import RetryableError, Superseded
from loom_common.events import Event, RunEvent, RunEventBatch, RunFinished
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
# How long an event may wait for others to share its bus message: a node's start-up events
# then go out as one.
BATCH_WAIT_S = 0.025
# How long a text delta after the run's first (which goes at once: time to first token) may
# wait: a small model's tokens come 20-60 ms apart, so 25 ms merged almost none (6.8 messages
# for 8 tokens); at 100 ms a few deltas share each message, still ten updates a second, and the
# run's last ones go at its end without waiting (`flush`).
TEXT_WAIT_S = 0.1
BATCH_MAX_EVENTS = 64             # a batch this full is sealed at once
TEXT_MAX_PIECES = 16              # text deltas merged into one event at most
# A sealed batch whose JSON is larger (big node outputs) goes out one event per message, as
# before batching: far below NATS's 1 MiB max_payload whatever the events hold.
BATCH_MAX_BYTES = 256 * 1024


# The text field of each streamed-text event, and the fields a delta may carry (`_continues`).
_TEXT_FIELD = {"message": "answer", "text_chunk": "text"}
_MESSAGE_FIELDS = frozenset(Message.model_fields) - {"type"}
_TEXT_CHUNK_FIELDS = frozenset(TextChunk.model_fields) - {"type"}
# What makes two text deltas of one node the same event's: a message's ids, a chunk's selector.
_TEXT_IDENTITY = {"message": ("id", "message_id", "conversation_id"), "text_chunk": ("from_variable_selector",)}


def _identity(kind: str, field: Callable[[str], Any]) -> tuple:
    return tuple(field(name) for name in _TEXT_IDENTITY[kind])


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
    """Batched, pipelined, in order. The sender writes each sealed batch to the connection as
    one message, without waiting for the previous message's ack (NATS keeps one connection's
    messages in order, and the stream stores them in that order); the confirmer awaits the
    acks in order and republishes a message whose ack failed or timed out, with back-off
    (the stream dedups on the message's event_id, so one republished after it had in fact
    been stored is not doubled). So a token's event waits for no earlier message's round trip.
    The one case that can break wire order: a message refused by the server while later ones
    were stored; it is then stored after them when a retry succeeds (readers order by seq)."""

    def __init__(self, broker: NatsBroker, run_id: str, tenant_id: str, start_seq: int = 0,
                 guard: Callable[[], None] | None = None, muted: bool = False,
                 deadline: float | None = None, ready: Callable[[], Awaitable[None]] | None = None) -> None:
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
        self._ready = ready  # awaited before the first message is sent
        self._unready: BaseException | None = None  # what `ready` raised: nothing is sent
        self.seq = start_seq
        self.subject = bus.run_events(run_id)
        # Trace context and ids of the run, made once (every event of a run carries the same).
        self._headers = {**outgoing_headers(tenant_id=tenant_id, run_id=run_id), "content-type": "application/json"}
        self._open: list[RunEvent] = []  # the batch being filled, in seq order
        self._pieces = 0                 # text deltas merged into the open batch's last event
        self._tail: list[str] = []       # of those, the ones not yet folded into it (`_fold_tail`)
        self._timer: asyncio.TimerHandle | None = None
        self._queue: asyncio.Queue[list[RunEvent] | None] = asyncio.Queue()
        self._acks: asyncio.Queue[tuple[Event, asyncio.Future | None, float] | None] = asyncio.Queue()
        self._sender = asyncio.create_task(self._send_all())
        self._confirmer = asyncio.create_task(self._confirm_all())

    def emit(self, event: str, data: dict[str, Any], node_id: str | None = None) -> None:
        if self.muted:
            return
        if self._continues(event, data, node_id):  # the hot path: one more token of the open text
            text = data[_TEXT_FIELD[event]]
            self.streamed.append(text)
            self._add_piece(text)
            return
        payload = run_event_data(event, data)  # the typed contract: a wrong field fails here
        first_text = False
        if isinstance(payload, Message | TextChunk):
            first_text = self.first_text_at is None
            self.streamed.append(payload.answer if isinstance(payload, Message) else payload.text)
        elif isinstance(payload, AgentThought):
            self.thoughts.append(payload)
        if not first_text and self._merge(payload, node_id):
            return
        self._fold_tail()
        self.seq += 1
        ev = RunEvent(tenant_id=self.tenant_id, run_id=self.run_id, seq=self.seq, task_id=self.run_id,
                      node_id=node_id, data=payload)
        if first_text:
            self.first_text_at = ev.occurred_at
        self._open.append(ev)
        self._pieces = 1
        if first_text or len(self._open) >= BATCH_MAX_EVENTS:
            self._seal()
        elif self._timer is None:
            wait = TEXT_WAIT_S if isinstance(payload, Message | TextChunk) else BATCH_WAIT_S
            self._timer = asyncio.get_running_loop().call_later(wait, self._seal)

    def _continues(self, event: str, data: dict[str, Any], node_id: str | None) -> bool:
        """Whether `data` is one more delta of the open batch's last event, checked without building
        its model (a token costs no validation): the same node, kind and identity, and no field
        the contract would refuse (anything unusual takes the validating path)."""
        if not self._open or event not in _TEXT_FIELD:
            return False
        last = self._open[-1]
        prev = last.data
        if last.node_id != node_id or prev.type != event or not isinstance(data.get(_TEXT_FIELD[event]), str):
            return False
        if _identity(event, data.get) != _identity(event, prev.__getattribute__):
            return False
        if event == "message":
            return data.keys() <= _MESSAGE_FIELDS and type(data.get("created_at", 0)) is int
        return data.keys() <= _TEXT_CHUNK_FIELDS

    def _merge(self, payload: Any, node_id: str | None) -> bool:
        """Append a text delta to the open batch's last event when that is the same node's text
        of the same kind (one message, one selector): one event of several tokens."""
        if not self._open or not isinstance(payload, Message | TextChunk):
            return False
        last = self._open[-1]
        prev = last.data
        if last.node_id != node_id or type(prev) is not type(payload):
            return False
        if _identity(payload.type, payload.__getattribute__) != _identity(prev.type, prev.__getattribute__):
            return False
        self._add_piece(getattr(payload, _TEXT_FIELD[payload.type]))
        return True

    def _add_piece(self, text: str) -> None:
        self._tail.append(text)
        self._pieces += 1
        if self._pieces >= TEXT_MAX_PIECES:
            self._seal()

    def _fold_tail(self) -> None:
        """The deltas merged into the open batch's last event become part of it (one model copy
        per merged event, not one per token)."""
        if not self._tail:
            return
        last = self._open[-1]
        field = _TEXT_FIELD[last.data.type]
        text = getattr(last.data, field) + "".join(self._tail)
        self._open[-1] = last.model_copy(update={"data": last.data.model_copy(update={field: text})})
        self._tail = []

    def _seal(self) -> None:
        """The open batch goes to the sender as it is; the next event opens another."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._open:
            self._fold_tail()
            self._queue.put_nowait(self._open)
            self._open, self._pieces = [], 0

    def _messages(self, batch: list[RunEvent]) -> list[tuple[Event, bytes]]:
        """A sealed batch as bus messages: one RunEvent, one RunEventBatch, or (too large) one
        message per event."""
        if len(batch) > 1:
            message = RunEventBatch(tenant_id=self.tenant_id, run_id=self.run_id, events=batch)
            raw = message.model_dump_json().encode()
            if len(raw) <= BATCH_MAX_BYTES:
                return [(message, raw)]
        return [(ev, ev.model_dump_json().encode()) for ev in batch]

    async def _send_all(self) -> None:
        js = _jetstream(self.broker)
        try:
            while (batch := await self._queue.get()) is not None:
                if self._ready is not None:
                    ready, self._ready = self._ready, None
                    try:
                        await ready()
                    except Exception as exc:
                        log.warning("run events held back: the run's claim is not on disk", error=repr(exc))
                        self._unready = exc
                if self._unready is not None:
                    continue
                if self._guard is not None:
                    try:
                        self._guard()
                    except Superseded:  # another worker may own the run: its events are its own now
                        log.warning("run events dropped: the run's lease is lost", from_seq=batch[0].seq)
                        return
                for message, raw in self._messages(batch):
                    try:
                        ack = await js.publish_async(self.subject, raw, stream=bus.RUN_EVENTS.name,
                                                     headers={**self._headers, "Nats-Msg-Id": message.event_id})
                    except Exception as exc:  # not even written: the confirmer publishes it the slow way
                        log.warning("run event not sent", seqs=_seqs(message), error=repr(exc))
                        ack = None
                    self._acks.put_nowait((message, ack, asyncio.get_running_loop().time() + ACK_TIMEOUT_S))
        finally:
            self._acks.put_nowait(None)

    async def _confirm_all(self) -> None:
        loop = asyncio.get_running_loop()
        while (item := await self._acks.get()) is not None:
            message, ack, deadline = item
            try:
                if ack is None:
                    raise RuntimeError("not sent")
                # Each ack's timeout runs from its own send: when a NATS node dies with many acks
                # in flight, they expire together, not one ACK_TIMEOUT_S after another.
                await asyncio.wait_for(ack, max(0.0, deadline - loop.time()))
            except Exception as exc:
                if not self._still_ours(message):
                    return
                log.warning("run event not acked; publishing it again", seqs=_seqs(message), error=repr(exc))
                await self._republish(message)

    def _still_ours(self, message: Event) -> bool:
        """The run's lease is still this worker's: a worker that lost it republishes nothing, or
        its old events could land after the new owner numbered on from the stream's last seq."""
        if self._guard is None:
            return True
        try:
            self._guard()
        except Superseded:
            log.warning("run events not republished: the run's lease is lost", from_seq=_seqs(message)[0])
            return False
        return True

    async def _republish(self, event: Event) -> None:
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
            except Exception as exc:  # whatever failed, the same message under its id may be sent again
                log.warning("run event not published", seqs=_seqs(event), attempt=tries, error=repr(exc))
                raise _NotStored(repr(exc)) from exc

        try:
            await REPUBLISH_POLICY.call(publish, deadline=deadline)
        except Superseded:
            return
        except _NotStored as exc:
            self.lost.extend(_seqs(event))
            log.error("run event lost: not published by the run's deadline", seqs=_seqs(event), attempts=tries,
                      error=str(exc))

    async def flush(self) -> None:
        """Publish everything emitted so far and wait for its acks (or its give-up: `lost`), then stop.
        Raises what `ready` raised (nothing was sent)."""
        self._seal()
        self._queue.put_nowait(None)
        await self._sender
        await self._confirmer
        if self._unready is not None:
            raise self._unready

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in (self._sender, self._confirmer):
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(self._sender, self._confirmer, return_exceptions=True)


def _seqs(message: Event) -> list[int]:
    """The seqs a bus message carries (one event's, or a batch's)."""
    return [ev.seq for ev in message.events] if isinstance(message, RunEventBatch) else [message.seq]


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
