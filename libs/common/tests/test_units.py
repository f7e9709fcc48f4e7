"""Pure unit tests of loom_common: events, ids, retry policy, telemetry headers, settings."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from pydantic import ValidationError

from loom_common import bus
from loom_common.errors import PermanentError, RetryableError
from loom_common.events import RunEvent, RunEventAdapter, RunRequested
from loom_common.ids import new_id
from loom_common.retry import RetryPolicy
from loom_common.settings import ServiceSettings
from loom_common.telemetry import (
    TENANT_HEADER,
    adopt_incoming,
    current_trace_id,
    outgoing_headers,
    setup_tracing,
)


def test_ids_are_time_ordered_uuid7() -> None:
    ids = [new_id() for _ in range(50)]
    assert all(i[14] == "7" for i in ids)
    assert len(set(ids)) == 50


def test_events_are_versioned_and_strict() -> None:
    ev = RunRequested(tenant_id="t1", run_id="r1", app_id="a1", inputs={"x": 1})
    assert ev.type == "run.requested" and ev.version == 1
    again = RunRequested.model_validate_json(ev.model_dump_json())
    assert again == ev
    with pytest.raises(ValidationError):
        RunRequested(tenant_id="t1", run_id="r1", app_id="a1", unknown_field=1)
    with pytest.raises(ValidationError):
        RunRequested.model_validate({**ev.model_dump(), "version": 2})
    evt = RunEventAdapter.validate_python({"type": "run.event", "version": 1, "tenant_id": "t",
                                          "run_id": "r", "seq": 1, "event": "node_started"})
    assert isinstance(evt, RunEvent)


def test_bus_subjects_are_templated_here_only() -> None:
    assert bus.run_events("abc") == "run.abc.events"
    assert bus.run_cancel("abc") == "runs.cancel.abc"
    kwargs = bus.ORCHESTRATOR_RUNS.subscriber_kwargs()
    assert kwargs["durable"] == "orchestrator-runs"
    assert kwargs["config"].max_deliver == 5
    assert {c.stream.name for c in bus.ALL_CONSUMERS} <= {s.name for s in bus.ALL_STREAMS}


async def test_retry_policy_retries_only_retryable() -> None:
    calls = 0

    async def flaky():
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RetryableError("not yet")
        return "ok"

    policy = RetryPolicy(initial_interval_s=0.001, maximum_attempts=5)
    assert await policy.call(flaky) == "ok" and calls == 3

    async def refused():
        nonlocal calls
        calls += 1
        raise PermanentError("no")

    calls = 0
    with pytest.raises(PermanentError):
        await policy.call(refused)
    assert calls == 1
    assert policy.delay_for(1) == 0.001 and policy.delay_for(3) == 0.004


def test_trace_context_and_tenant_round_trip_through_headers() -> None:
    setup_tracing("unit")
    with trace.get_tracer("t").start_as_current_span("outer"):
        sent_trace = current_trace_id()
        headers = outgoing_headers(tenant_id="tenant-9")
    assert headers[TENANT_HEADER] == "tenant-9" and "traceparent" in headers
    assert current_trace_id() is None
    with adopt_incoming(headers):
        assert current_trace_id() == sent_trace


def test_service_settings_read_shared_loom_names(monkeypatch) -> None:
    from pydantic_settings import SettingsConfigDict

    class DemoSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="LOOM_DEMO_", extra="ignore", populate_by_name=True)

    monkeypatch.setenv("LOOM_NATS_URL", "nats://example:4222")
    monkeypatch.setenv("LOOM_DEMO_HTTP_PORT", "9999")
    s = DemoSettings()
    assert s.nats_url == "nats://example:4222" and s.http_port == 9999
