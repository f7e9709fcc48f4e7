"""The run's ordered event stream on `run.<run_id>.events`.

`RunEventPublisher.emit` numbers an event (seq 1, 2, 3, ... across redeliveries: a resumed
run continues from the last seq found on the subject) and queues it; one sender task
writes the queue to the connection in order, and a confirmer task checks the JetStream
acks in order, so seq order is wire order even when concurrent branches emit at once, the
engine never waits on the bus, and no event waits for an earlier event's ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable
from typing import Any

from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from loom_common import bus, messaging
from loom_common.errors import Superseded
from loom_common.events import RunEvent
from loom_common.logging import get_logger
from loom_common.telemetry import outgoing_headers

log = get_logger(__name__)

ACK_TIMEOUT_S = 5.0
# How long an unacked event is published again before it is given up: longer than a JetStream
# cluster takes to elect a new stream leader after a node dies, or a single server to restart
# (five tries, about 30 s, lost the events of live runs in the 3-node cluster test). The run's
# lease bounds it too: a worker that lost the run stops at once.
REPUBLISH_PATIENCE_S = 120.0


def _backoff_s(attempt: int) -> float:
    return min(2.0, 0.2 * 2 ** (attempt - 1))


def announces_end(last: RunEvent, *, chat: bool) -> bool:
    """Whether `last` is a run's final event (workflow.py's `_finish`): message_end in a chat
    that did not fail, else workflow_finished."""
    if last.event == "message_end":
        return True
    return last.event == "workflow_finished" and (not chat or last.data.get("status") == "failed")


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
                 guard: Callable[[], None] | None = None, muted: bool = False) -> None:
        self.broker, self.run_id, self.tenant_id = broker, run_id, tenant_id
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
        self.seq += 1
        self._queue.put_nowait(RunEvent(tenant_id=self.tenant_id, run_id=self.run_id, seq=self.seq, event=event,
                                        task_id=self.run_id, node_id=node_id, data=data))

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
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + REPUBLISH_PATIENCE_S
        attempt = 0
        while True:
            if attempt and not self._still_ours(event):
                return
            try:
                await messaging.publish(self.broker, self.subject, event, stream=bus.RUN_EVENTS.name,
                                        timeout_s=ACK_TIMEOUT_S)
                return
            except Exception as exc:
                attempt += 1
                if loop.time() >= give_up_at:
                    log.error("run event lost: not published in time", seq=event.seq, attempts=attempt,
                              patience_s=REPUBLISH_PATIENCE_S, error=repr(exc))
                    return
                log.warning("run event not published", seq=event.seq, attempt=attempt, error=repr(exc))
                await asyncio.sleep(_backoff_s(attempt))

    async def flush(self) -> None:
        """Publish everything emitted so far and wait for its acks, then stop."""
        self._queue.put_nowait(None)
        await self._sender
        await self._confirmer

    async def close(self) -> None:
        for task in (self._sender, self._confirmer):
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(self._sender, self._confirmer, return_exceptions=True)
