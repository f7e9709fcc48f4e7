"""`RunBus` over NATS JetStream.

Reading a run's events uses an ordered consumer (ephemeral, flow-controlled, no acks) on that
run's subject, delivering everything from the start: a run's events are few, and filtering
`seq <= after_seq` here is what makes resume-from-Last-Event-ID exact whatever stream
sequence the events got. `open(run_id)` subscribes at once (a run being started subscribes
before its request is published, so its first event never waits for a consumer to be made);
`events(...)` subscribes when first read. `follow=False` stops once the stored events are read
(used to repair a run record no client watched to its end).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from faststream.nats import NatsBroker
from nats.js.api import DeliverPolicy

from loom_common import bus, messaging
from loom_common.events import RunCancelRequested, RunEvent, RunRequested
from loom_common.logging import get_logger
from loom_gateway.runs import request_run

log = get_logger(__name__)


class Feed:
    """One run's events off an ordered consumer (seq > after_seq), until closed."""

    def __init__(self, sub, after_seq: int = 0, *, follow: bool = True, first_wait_s: float = 0.5):
        self.sub, self.after_seq, self.follow, self.first_wait_s = sub, after_seq, follow, first_wait_s
        self.done = False

    def __aiter__(self) -> Feed:
        return self

    async def __anext__(self) -> RunEvent:
        while not self.done:
            try:
                msg = await self.sub.next_msg(timeout=None if self.follow else self.first_wait_s)
            except TimeoutError:
                if self.follow:
                    continue
                break
            ev = RunEvent.model_validate_json(msg.data)
            if not self.follow and msg.metadata.num_pending == 0:
                self.done = True  # the stored events are read: this one is the last
            if ev.seq > self.after_seq:
                return ev
        await self.aclose()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.done = True
        if self.sub is not None:
            sub, self.sub = self.sub, None
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


class NatsRunBus:
    def __init__(self, broker: NatsBroker):
        self.broker = broker

    async def request(self, event: RunRequested) -> None:
        await request_run(self.broker, event)

    async def cancel(self, event: RunCancelRequested) -> None:
        await messaging.publish(self.broker, bus.run_cancel(event.run_id), event, stream=bus.RUN_CONTROL.name)

    async def _subscribe(self, run_id: str):
        js = self.broker.connection.jetstream()
        return await js.subscribe(bus.run_events(run_id), stream=bus.RUN_EVENTS.name, ordered_consumer=True,
                                  deliver_policy=DeliverPolicy.ALL)

    async def open(self, run_id: str) -> Feed:
        return Feed(await self._subscribe(run_id))

    async def events(self, run_id: str, after_seq: int = 0, *, follow: bool = True,
                     first_wait_s: float = 0.5) -> AsyncIterator[RunEvent]:
        feed = Feed(await self._subscribe(run_id), after_seq, follow=follow, first_wait_s=first_wait_s)
        try:
            async for ev in feed:
                yield ev
        finally:
            await feed.aclose()
