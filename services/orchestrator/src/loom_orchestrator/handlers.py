"""NATS transport of the orchestrator: thin handlers over the domain functions."""

from __future__ import annotations

from faststream.nats import NatsBroker, NatsMessage, NatsRouter

from loom_common import bus, messaging
from loom_common.events import RunEvent, RunRequested
from loom_common.logging import get_logger
from loom_common.telemetry import current_trace_id
from loom_orchestrator.intake import RunStore, accept_run

log = get_logger(__name__)


class BusRunEvents:
    """RunEventSink that publishes to `run.<run_id>.events`."""

    def __init__(self, broker: NatsBroker) -> None:
        self.broker = broker

    async def emit(self, event: RunEvent) -> None:
        await messaging.publish(self.broker, bus.run_events(event.run_id), event,
                                stream=bus.RUN_EVENTS.name)


def build_router(broker: NatsBroker, store: RunStore) -> NatsRouter:
    router = NatsRouter()
    events = BusRunEvents(broker)

    @router.subscriber(**bus.ORCHESTRATOR_RUNS.subscriber_kwargs())
    async def on_run_requested(event: RunRequested, msg: NatsMessage) -> None:
        async with messaging.handling(msg, bus.ORCHESTRATOR_RUNS, broker):
            created = await accept_run(event, store=store, events=events, trace_id=current_trace_id())
            log.info("run accepted" if created else "run redelivered, already recorded",
                     run_id=event.run_id, attempt=messaging.deliveries(msg))

    return router
