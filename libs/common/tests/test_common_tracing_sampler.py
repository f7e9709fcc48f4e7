"""Spans are recorded only while a processor receives them (`telemetry._RecordWhenExported`):
without one, spans still carry valid ids, so trace context travels and logs keep trace ids."""

from __future__ import annotations

import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider

from loom_common import telemetry


@pytest.fixture
def tracer(monkeypatch: pytest.MonkeyPatch):
    def make(exported: bool) -> trace.Tracer:
        monkeypatch.setattr(telemetry, "_exported", exported)
        return TracerProvider(sampler=telemetry._RecordWhenExported()).get_tracer("sampler-test")
    return make


def test_without_a_processor_spans_are_not_recorded_but_keep_their_ids(tracer) -> None:
    t = tracer(False)
    with t.start_as_current_span("outer") as outer, t.start_as_current_span("inner") as inner:
        assert not outer.is_recording() and not inner.is_recording()
        ctx = inner.get_span_context()
        assert ctx.is_valid and ctx.trace_id == outer.get_span_context().trace_id
        assert telemetry.current_trace_id() == format(ctx.trace_id, "032x")
        headers: dict[str, str] = {}
        propagate.inject(headers)
        assert headers["traceparent"].split("-")[1] == format(ctx.trace_id, "032x")


def test_with_a_processor_spans_are_recorded_and_continue_an_incoming_trace(tracer) -> None:
    t = tracer(True)
    incoming = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}
    with t.start_as_current_span("handled", context=propagate.extract(incoming)) as span:
        assert span.is_recording()
        assert format(span.get_span_context().trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
