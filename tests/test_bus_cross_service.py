"""One service's code publishes, another's consumes, over the real NATS JetStream.

Shows: the consumer sees the publisher's trace id; a handler that fails before acking gets
the message again (redelivery); the work queue hands each run to one worker.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from faststream.nats import ConsumerConfig, NatsBroker, NatsMessage, NatsRouter
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from loom_common import bus, messaging
from loom_common.errors import RetryableError
from loom_common.events import RunEvent, RunRequested
from loom_common.ids import new_id
from loom_common.telemetry import current_trace_id, setup_tracing
from loom_common.testing import eventually
from loom_gateway.runs import request_run

pytestmark = pytest.mark.integration

exporter = InMemorySpanExporter()


def _broker(url: str) -> NatsBroker:
    provider = setup_tracing("cross-service-test", extra_processors=[SimpleSpanProcessor(exporter)]) \
        if not exporter.get_finished_spans() else trace.get_tracer_provider()
    return NatsBroker(url, middlewares=[NatsTelemetryMiddleware(tracer_provider=provider)])


class FlakyStore:
    """Records runs like the orchestrator's store, but fails the first delivery of each run
    before the handler acks."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.recorded: set[str] = set()
        self.done = asyncio.Event()

    async def record_requested(self, event: RunRequested, trace_id: str | None) -> bool:
        self.seen.append((event.run_id, trace_id))
        if len(self.seen) == 1:
            raise RetryableError("database restarting", next_retry_delay_s=0.2)
        created = event.run_id not in self.recorded
        self.recorded.add(event.run_id)
        self.done.set()
        return created


def intake_router(broker: NatsBroker, store: FlakyStore) -> NatsRouter:
    """The orchestrator's side of the handshake, reduced to what this test checks: consume
    `runs.requested` on the orchestrator's durable, record the run, announce it, then ack
    (`messaging.handling` naks a retryable failure, so JetStream redelivers)."""
    consumer = bus.ORCHESTRATOR_RUNS
    router = NatsRouter()
    kwargs = consumer.subscriber_kwargs()
    kwargs["config"] = ConsumerConfig(ack_wait=consumer.ack_wait_s, max_deliver=consumer.max_deliver)

    @router.subscriber(**kwargs)
    async def on_run_requested(event: RunRequested, msg: NatsMessage) -> None:
        async with messaging.handling(msg, consumer, broker):
            if await store.record_requested(event, current_trace_id()):
                started = RunEvent(tenant_id=event.tenant_id, run_id=event.run_id, seq=1,
                                   event="workflow_started", task_id=event.run_id,
                                   data={"id": event.run_id, "app_id": event.app_id, "inputs": event.inputs})
                await messaging.publish(broker, bus.run_events(event.run_id), started, stream=bus.RUN_EVENTS.name)

    return router


async def test_publish_from_gateway_consumed_by_orchestrator_with_trace_and_redelivery(nats_url) -> None:
    setup_tracing("cross-service-test", extra_processors=[SimpleSpanProcessor(exporter)])
    provider = trace.get_tracer_provider()
    gateway = NatsBroker(nats_url, middlewares=[NatsTelemetryMiddleware(tracer_provider=provider)])
    orchestrator = NatsBroker(nats_url, middlewares=[NatsTelemetryMiddleware(tracer_provider=provider)])
    store = FlakyStore()
    orchestrator.include_router(intake_router(orchestrator, store))
    await gateway.connect()
    await messaging.ensure_streams(gateway)
    await gateway.start()
    await orchestrator.start()
    events: list[RunEvent] = []
    try:
        run_id = new_id()
        sub = await gateway.connection.jetstream().subscribe(bus.run_events(run_id), ordered_consumer=True)
        with trace.get_tracer("test").start_as_current_span("POST /v1/workflows/run"):
            sent_trace = current_trace_id()
            await request_run(gateway, RunRequested(tenant_id="t-1", run_id=run_id, app_id="app-1"))
        await asyncio.wait_for(store.done.wait(), 15)
        msg = await sub.next_msg(timeout=10)
        events.append(RunEvent.model_validate_json(msg.data))
    finally:
        await orchestrator.stop()
        await gateway.stop()

    # delivered twice: the first attempt failed before ack, JetStream redelivered it
    assert [rid for rid, _ in store.seen] == [run_id, run_id]
    # both deliveries ran inside the publisher's trace
    assert {tid for _, tid in store.seen} == {sent_trace}
    assert events[0].event == "workflow_started" and events[0].seq == 1


async def test_real_orchestrator_process_records_the_run_with_the_publishers_trace(
        nats_url, database_url, run_service) -> None:
    run_service("orchestrator")
    setup_tracing("cross-service-test")
    gateway = NatsBroker(nats_url, middlewares=[NatsTelemetryMiddleware(tracer_provider=trace.get_tracer_provider())])
    await gateway.connect()
    await messaging.ensure_streams(gateway)
    run_id = new_id()
    try:
        with trace.get_tracer("test").start_as_current_span("POST /v1/workflows/run"):
            sent_trace = current_trace_id()
            await request_run(gateway, RunRequested(tenant_id="t-2", run_id=run_id, app_id="app-2",
                                                    inputs={"q": "hi"}))
        conn = await asyncpg.connect(database_url)
        try:
            row = await eventually(lambda: conn.fetchrow("SELECT * FROM orchestrator.runs WHERE id = $1", run_id),
                                   "the orchestrator process recorded the run")
        finally:
            await conn.close()
    finally:
        await gateway.stop()
    assert row is not None, "the orchestrator process never recorded the run"
    # The worker goes on to execute the run: an empty graph may already have failed.
    assert row["tenant_id"] == "t-2" and row["status"] in {"accepted", "running", "failed"}
    assert row["trace_id"] == sent_trace
    assert json.loads(row["request"])["inputs"] == {"q": "hi"}
