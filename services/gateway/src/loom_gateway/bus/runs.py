"""`RunBus` over NATS JetStream.

Two ways to read a run's events:

- `events(run_id, after_seq)`, the stored events: an ordered consumer (ephemeral,
  flow-controlled, no acks) on the run's subject delivering everything from the start; a
  run's events are few, and filtering `seq <= after_seq` here makes resume-from-Last-Event-ID
  exact whatever stream sequence the events got. `follow=False` stops once the stored events
  are read (a stored run's trace, a paused run's open forms).
- `open(run_id)`, for a run this request is starting: a plain NATS subscription on the
  subject (JetStream publishes reach core subscribers too), made before the request is
  published. It costs no round trip and no consumer on the server, and an event arrives as it
  is published rather than after it was stored. Core NATS does not redeliver, so the feed
  checks what it gets against the events' own numbering (`seq` is 1, 2, 3, ... per run): a
  gap, or a quiet spell after which the stream holds events this feed has not seen (a
  reconnect lost some), hands over to the ordered consumer from the last seq delivered.
  Duplicates (an event republished after a lost ack) are dropped by seq.

Both read messages with `read_run_events`: a message holds one event or a batch of
consecutive ones (the orchestrator batches a run's events, each keeping its seq), a stored
event of an older schema is lifted to the current one, and one that cannot be read raises
`RunEventUnreadable` (named, never half-read).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

import nats.errors
import nats.js.errors
from faststream.nats import NatsBroker
from nats.js.api import DeliverPolicy

from loom_common import bus, messaging
from loom_common.events import RunCancelRequested, RunEvent, RunRequested, read_run_events
from loom_common.logging import get_logger
from loom_gateway.domain.errors import Upstream
from loom_gateway.runs import request_run

log = get_logger(__name__)


@contextlib.contextmanager
def _bus_unavailable_is_503(what: str):
    """NATS gave no ack (down, slow past the publish timeout, no stream on the subject): a typed
    503 the client may retry, not a 500."""
    try:
        yield
    except (messaging.PublishNotAcknowledged, nats.errors.TimeoutError, nats.errors.NoRespondersError,
            nats.js.errors.NoStreamResponseError) as exc:
        raise Upstream(f"{what}: the message bus did not acknowledge it; try again.") from exc


class Feed:
    """One run's events off an ordered consumer (seq > after_seq), in seq order, until closed.

    The stream holds them in the order they were stored, which is seq order except after a
    lost ack (a NATS node gone): the publisher republishes the event, stored after later ones
    (orchestrator events.py). An event ahead of the next seq is held until the gap fills; a gap
    still open after `gap_wait_s` of quiet (the event was never stored) is skipped."""

    def __init__(self, sub, after_seq: int = 0, *, follow: bool = True, first_wait_s: float = 0.5,
                 gap_wait_s: float = 40.0):
        self.sub, self.after_seq, self.follow, self.first_wait_s = sub, after_seq, follow, first_wait_s
        self.gap_wait_s = gap_wait_s  # longer than the publisher's retries of one event
        self.next_seq = after_seq + 1
        self.ahead: dict[int, RunEvent] = {}  # read, waiting for the seqs before them
        self.skip = False     # the gap before `ahead` stayed open: deliver past it
        self.drained = False  # every stored event was read (follow=False)
        self.done = False

    def __aiter__(self) -> Feed:
        return self

    @property
    def ready(self) -> bool:
        """The next event can be had without waiting for the bus."""
        return bool(self.ahead) and (self.next_seq in self.ahead or self.skip or self.drained)

    def _release(self) -> RunEvent | None:
        ev = self.ahead.pop(self.next_seq, None)
        if ev is None and self.ahead and (self.skip or self.drained):
            ev = self.ahead.pop(min(self.ahead))
        if ev is not None:
            self.next_seq = ev.seq + 1
        if not self.ahead:
            self.skip = False
        return ev

    async def __anext__(self) -> RunEvent:
        while True:
            if (ev := self._release()) is not None:
                return ev
            if self.done or self.drained:
                break
            wait = self.gap_wait_s if self.ahead else None if self.follow else self.first_wait_s
            try:
                msg = await self.sub.next_msg(timeout=wait)
            except TimeoutError:
                if self.ahead:
                    self.skip = True  # never stored: go on past the gap
                elif not self.follow:
                    self.drained = True
                continue
            events = read_run_events(msg.data)
            if not self.follow and msg.metadata.num_pending == 0:
                self.drained = True  # the stored events are read: this message is the last
            for ev in events:
                if ev.seq >= self.next_seq:  # an earlier seq is a duplicate (a republished event)
                    self.ahead.setdefault(ev.seq, ev)
        await self.aclose()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.done = True
        if self.sub is not None:
            sub, self.sub = self.sub, None
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


class LiveFeed:
    """A run's events as they are published, in seq order, falling back to the stored
    events (`Feed`) whenever it cannot be sure it saw every one (see the module doc)."""

    def __init__(self, sub, catch_up, check_s: float = 2.0):
        self.sub, self.catch_up, self.check_s = sub, catch_up, check_s
        self.last_seq = 0
        self.pending: deque[RunEvent] = deque()  # the rest of the message last read (a batch)
        self.stored: Feed | None = None   # after a hand-over: the ordered consumer

    def __aiter__(self) -> LiveFeed:
        return self

    @property
    def ready(self) -> bool:
        """The next event can be had without waiting for the bus (the rest of a batch)."""
        if self.stored is not None:
            return self.stored.ready
        for ev in self.pending:
            if ev.seq > self.last_seq:  # the first one not yet delivered: next, or a gap (the stream's)
                return ev.seq == self.last_seq + 1
        return False

    async def __anext__(self) -> RunEvent:
        while self.stored is None:
            if self.pending:
                ev = self.pending.popleft()
                if ev.seq <= self.last_seq:
                    continue  # a republished event already delivered
                if ev.seq > self.last_seq + 1:
                    self.pending.clear()
                    await self._hand_over()  # one or more were missed: the stream has them
                    break
                self.last_seq = ev.seq
                return ev
            if self.sub is None:
                raise StopAsyncIteration
            try:
                msg = await self.sub.next_msg(timeout=self.check_s)
            except TimeoutError:
                if await self.catch_up.stored_beyond(self.last_seq):
                    await self._hand_over()
                continue
            self.pending.extend(read_run_events(msg.data))
        ev = await anext(self.stored)
        self.last_seq = ev.seq
        return ev

    async def _hand_over(self) -> None:
        log.info("run feed reads the stored events", after_seq=self.last_seq)
        await self._unsubscribe()
        self.stored = Feed(await self.catch_up.subscribe(), self.last_seq)

    async def _unsubscribe(self) -> None:
        if self.sub is not None:
            sub, self.sub = self.sub, None
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def aclose(self) -> None:
        await self._unsubscribe()
        if self.stored is not None:
            await self.stored.aclose()


class _Inbox:
    """A core subscription's messages, awaited one by one: nats-py's own `next_msg` makes two
    tasks and a uuid for every message it returns (on Python 3.11), this a queue get."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self.sub = None

    async def open(self, nc, subject: str) -> _Inbox:
        self.sub = await nc.subscribe(subject, cb=self._put)
        return self

    async def _put(self, msg) -> None:
        self.queue.put_nowait(msg)

    async def next_msg(self, timeout: float):
        async with asyncio.timeout(timeout):  # TimeoutError, as nats-py's
            return await self.queue.get()

    async def unsubscribe(self) -> None:
        await self.sub.unsubscribe()


class _StoredEvents:
    """What a LiveFeed needs of the stream: is there more than it saw, and an ordered consumer."""

    def __init__(self, bus: NatsRunBus, run_id: str):
        self.bus, self.run_id = bus, run_id

    async def stored_beyond(self, seq: int) -> bool:
        # Nothing stored, or the stream unreachable, reads 0: look again after the next spell.
        return await messaging.last_run_event_seq(self.bus.broker, self.run_id) > seq

    async def subscribe(self):
        return await self.bus._subscribe(self.run_id)


class NatsRunBus:
    def __init__(self, broker: NatsBroker):
        self.broker = broker

    async def request(self, event: RunRequested) -> None:
        with _bus_unavailable_is_503("The run could not be requested"):
            await request_run(self.broker, event)

    async def cancel(self, event: RunCancelRequested) -> None:
        with _bus_unavailable_is_503("The stop could not be sent"):
            await messaging.publish(self.broker, bus.run_cancel(event.run_id), event, stream=bus.RUN_CONTROL.name)

    async def queue_depth(self) -> int:
        """Runs waiting for a worker: the orchestrators' durable consumer's pending count (0
        before any orchestrator created it). Read by domain/run_admission.py."""
        c = bus.ORCHESTRATOR_RUNS
        try:
            info = await self.broker.connection.jetstream().consumer_info(c.stream.name, c.durable, timeout=2.0)
        except nats.js.errors.NotFoundError:
            return 0
        return int(info.num_pending)

    async def _subscribe(self, run_id: str):
        js = self.broker.connection.jetstream()
        return await js.subscribe(bus.run_events(run_id), stream=bus.RUN_EVENTS.name, ordered_consumer=True,
                                  deliver_policy=DeliverPolicy.ALL)

    async def open(self, run_id: str) -> LiveFeed:
        # No round trip: the SUB goes out on the connection ahead of the request published next.
        sub = await _Inbox().open(self.broker.connection, bus.run_events(run_id))
        return LiveFeed(sub, _StoredEvents(self, run_id))

    async def events(self, run_id: str, after_seq: int = 0, *, follow: bool = True,
                     first_wait_s: float = 0.5) -> AsyncIterator[RunEvent]:
        feed = Feed(await self._subscribe(run_id), after_seq, follow=follow, first_wait_s=first_wait_s)
        try:
            async for ev in feed:
                yield ev
        finally:
            await feed.aclose()
