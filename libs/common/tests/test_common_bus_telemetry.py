"""The bus middlewares every service's broker gets (loom_common.bus_telemetry), on a real NATS
server: a message's handler runs in the publisher's trace (so does a span it opens), no span is
made per message, and each message handled and published is counted under FastStream's series
names and labels (the dashboard's and the alerts' queries)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from faststream.nats import NatsBroker, NatsMessage
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from loom_common.bus_telemetry import TraceContext, message_counts
from loom_common.events import RunCancelRequested
from loom_common.telemetry import current_trace_id, outgoing_headers, setup_tracing
from loom_common.testing import eventually

pytestmark = pytest.mark.integration


async def test_a_handler_runs_in_the_publishers_trace_and_each_message_is_counted_once(nats_url: str) -> None:
    exporter = InMemorySpanExporter()
    setup_tracing("test-bus-telemetry", extra_processors=[SimpleSpanProcessor(exporter)])
    registry = CollectorRegistry()
    broker = NatsBroker(nats_url, middlewares=[TraceContext, message_counts("svc", registry)])
    subject, bad = f"test.telemetry.{uuid.uuid4().hex[:8]}", f"test.telemetry.{uuid.uuid4().hex[:8]}"
    seen: asyncio.Queue[tuple[str | None, str | None]] = asyncio.Queue()

    @broker.subscriber(subject, no_reply=True)
    async def handle(event: RunCancelRequested, msg: NatsMessage) -> None:
        with trace.get_tracer("test").start_as_current_span("handler work") as span:
            seen.put_nowait((current_trace_id(), format(span.get_span_context().trace_id, "032x")))

    @broker.subscriber(bad, no_reply=True)
    async def fail(event: RunCancelRequested) -> None:
        raise RuntimeError("boom")

    await broker.start()
    try:
        with trace.get_tracer("test").start_as_current_span("POST /v1/chat-messages"):
            sent = current_trace_id()
            await broker.publish(RunCancelRequested(tenant_id="t", run_id="r1"), subject)  # injected here
            # messaging.publish's way: the caller's headers already carry the context
            await broker.publish(RunCancelRequested(tenant_id="t", run_id="r2"), subject, headers=outgoing_headers())
            await broker.publish(RunCancelRequested(tenant_id="t", run_id="r3"), bad)
        got = [await asyncio.wait_for(seen.get(), 10) for _ in range(2)]
        assert got == [(sent, sent), (sent, sent)]
        await eventually(lambda: registry.get_sample_value("loom_received_processed_messages_total", {
            "app_name": "svc", "broker": "nats", "handler": bad, "status": "error"}), "the failed message counted")
    finally:
        await broker.stop()

    names = {s.name for s in exporter.get_finished_spans() if s.context.trace_id == int(sent, 16)}
    assert names == {"POST /v1/chat-messages", "handler work"}  # no span of the messages themselves

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"app_name": "svc", "broker": "nats", **labels})

    assert value("loom_published_messages_total", destination=subject, status="success") == 2
    assert value("loom_published_messages_total", destination=bad, status="success") == 1
    assert value("loom_received_processed_messages_total", handler=subject, status="acked") == 2
    assert value("loom_received_processed_messages_total", handler=bad, status="error") == 1
