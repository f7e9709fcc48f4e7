"""The pipelined run event publisher on the real NATS JetStream: a burst of events is stored
in seq order with every ack awaited by `flush`, and runs share one JetStream context; an unacked
event is published again until the run's deadline, then counted lost."""

from __future__ import annotations

import time

import pytest
from orchestrator_testkit import BusClient

from loom_common.ids import new_id
from loom_common.messaging import last_run_event_seq
from loom_common.retry import RetryPolicy
from loom_orchestrator import events as events_module
from loom_orchestrator.events import RunEventPublisher, _jetstream

pytestmark = pytest.mark.integration


async def test_a_burst_is_stored_in_seq_order_and_flush_waits_for_the_acks(nats_url) -> None:
    async with BusClient(nats_url) as client:
        run_id = new_id()
        events = RunEventPublisher(client.broker, run_id, "t1", start_seq=3)  # a resumed run goes on from 3
        for i in range(300):  # two nodes' deltas in turn: 300 events, none merged into the one before
            events.emit("message", {"answer": f"{i} "}, f"llm{i % 2}")
        await events.flush()
        assert await last_run_event_seq(client.broker, run_id) == 303  # stored, not just sent
        stored = await client.all_events(run_id)
        assert [e.seq for e in stored] == list(range(4, 304))
        assert "".join(e.data.answer for e in stored) == "".join(f"{i} " for i in range(300))
        assert {e.tenant_id for e in stored} == {"t1"}

        other = RunEventPublisher(client.broker, new_id(), "t1")
        assert _jetstream(other.broker) is _jetstream(events.broker)  # one reply subscription per connection
        await other.flush()


async def test_an_event_unacked_through_a_long_outage_is_published_once_the_stream_answers(nats_url,
                                                                                         unacked_stream) -> None:
    """A stream without a leader (a cluster electing one, a restart) answers no publish for a
    while: the event is published again until it is stored, not dropped after five tries (the
    3-node cluster test lost live runs' events that way)."""
    outage = unacked_stream(12)  # more tries than the old five
    async with BusClient(nats_url) as client:
        run_id = new_id()
        events = RunEventPublisher(client.broker, run_id, "t1")
        events.emit("message", {"answer": "kept"}, "llm")
        await events.flush()
        assert outage.refusals == 0 and events.lost == []
        stored = await client.all_events(run_id)
        assert [(e.seq, e.data.answer) for e in stored] == [(1, "kept")]


async def test_an_event_is_given_up_only_at_the_runs_deadline_and_counted_lost(nats_url, unacked_stream,
                                                                               monkeypatch) -> None:
    """Retried with the publisher's RetryPolicy until the run's deadline (here: already past,
    so the least patience applies), then given up and counted in `lost`, which the worker turns
    into a failed run (test_orchestrator_outcomes.py)."""
    outage = unacked_stream(None)  # never stored
    monkeypatch.setattr(events_module, "REPUBLISH_POLICY",
                        RetryPolicy(initial_interval_s=0.05, maximum_interval_s=0.05, maximum_attempts=None))
    monkeypatch.setattr(events_module, "MIN_PATIENCE_S", 0.3)
    async with BusClient(nats_url) as client:
        events = RunEventPublisher(client.broker, new_id(), "t1", deadline=time.monotonic())
        events.emit("message", {"answer": "x"}, "llm")
        events.emit("message", {"answer": "y"}, "llm")
        await events.flush()  # returns: each event is given up once the patience is spent
        assert len(outage.sent) >= 2 * 2 and events.lost == [1, 2]
