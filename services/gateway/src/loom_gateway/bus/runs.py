"""`RunBus` over NATS JetStream.

Reading a run's events uses an ordered consumer (ephemeral, flow-controlled, no acks) on that
run's subject, delivering everything from the start: a run's events are few, and filtering
`seq <= after_seq` here is what makes resume-from-Last-Event-ID exact whatever stream
sequence the events got. `follow=False` stops once the stored events are read (used to
repair a run record no client watched to its end).
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


class NatsRunBus:
    def __init__(self, broker: NatsBroker):
        self.broker = broker

    async def request(self, event: RunRequested) -> None:
        await request_run(self.broker, event)

    async def cancel(self, event: RunCancelRequested) -> None:
        await messaging.publish(self.broker, bus.run_cancel(event.run_id), event, stream=bus.RUN_CONTROL.name)

    async def events(self, run_id: str, after_seq: int = 0, *, follow: bool = True,
                     first_wait_s: float = 0.5) -> AsyncIterator[RunEvent]:
        js = self.broker.connection.jetstream()
        sub = await js.subscribe(bus.run_events(run_id), stream=bus.RUN_EVENTS.name, ordered_consumer=True,
                                 deliver_policy=DeliverPolicy.ALL)
        try:
            while True:
                try:
                    msg = await (sub.next_msg(timeout=None) if follow else sub.next_msg(timeout=first_wait_s))
                except TimeoutError:
                    if follow:
                        continue
                    return
                ev = RunEvent.model_validate_json(msg.data)
                if ev.seq > after_seq:
                    yield ev
                if not follow and msg.metadata.num_pending == 0:
                    return
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
