"""NATS transport of the orchestrator: thin handlers over the worker.

    runs.requested (durable work queue)  -> Worker.handle: record, execute/resume, settle
    runs.cancel.*  (plain subscription)  -> Worker.cancel: every worker hears every stop;
                                            the one running the run cancels it (or, for a
                                            run paused on human input, the first to take it
                                            off `paused` ends it: Worker.stop_paused)
"""

from __future__ import annotations

import dataclasses

from faststream.nats import ConsumerConfig, NatsRouter

from loom_common import bus, messaging
from loom_common.events import RunCancelRequested, RunRequested
from loom_common.logging import get_logger
from loom_orchestrator.worker import Worker

log = get_logger(__name__)


def runs_consumer(ack_wait_s: float | None = None) -> bus.Consumer:
    c = bus.ORCHESTRATOR_RUNS
    return dataclasses.replace(c, ack_wait_s=ack_wait_s) if ack_wait_s else c


def build_router(worker: Worker, *, max_workers: int = 1) -> NatsRouter:
    router = NatsRouter()
    consumer = worker.consumer
    kwargs = consumer.subscriber_kwargs()
    kwargs["config"] = ConsumerConfig(ack_wait=consumer.ack_wait_s, max_deliver=consumer.max_deliver)
    kwargs["max_workers"] = max_workers

    @router.subscriber(**kwargs)
    async def on_run_requested(event: RunRequested) -> None:
        await worker.handle(event, messaging.current_message(worker.broker))

    # A core subscription on RUN_CONTROL's subject sees the gateway's JetStream publishes,
    # whose reply subject waits for the stream's ack: answering there (FastStream's default)
    # can beat the ack and fail the publish (an empty reply is not an ack). Hence no_reply.
    @router.subscriber(bus.RUN_CANCEL_ALL, no_reply=True)
    async def on_run_cancel(event: RunCancelRequested) -> None:
        if worker.cancel(event.run_id, event.reason):
            log.info("run stop requested", run_id=event.run_id, reason=event.reason)
        else:  # not running here: it may be paused on a human-input form (no worker runs it)
            try:
                await worker.stop_paused(event.run_id, event.reason)
            except Exception as exc:
                log.warning("stop of a paused run failed", run_id=event.run_id, error=repr(exc))

    return router
