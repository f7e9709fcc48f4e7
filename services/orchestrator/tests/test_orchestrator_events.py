"""The pipelined run event publisher on the real NATS JetStream: a burst of events is stored
in seq order with every ack awaited by `flush`, and runs share one JetStream context."""

from __future__ import annotations

import pytest

from loom_common.ids import new_id
from loom_common.messaging import last_run_event_seq
from loom_orchestrator.events import RunEventPublisher, _jetstream
from loom_orchestrator.testkit import BusClient

pytestmark = pytest.mark.integration


async def test_a_burst_is_stored_in_seq_order_and_flush_waits_for_the_acks(nats_url) -> None:
    async with BusClient(nats_url) as client:
        run_id = new_id()
        events = RunEventPublisher(client.broker, run_id, "t1", start_seq=3)  # a resumed run goes on from 3
        for i in range(300):
            events.emit("message", {"answer": f"{i} "}, "llm")
        await events.flush()
        assert await last_run_event_seq(client.broker, run_id) == 303  # stored, not just sent
        stored = await client.all_events(run_id)
        assert [e.seq for e in stored] == list(range(4, 304))
        assert "".join(e.data["answer"] for e in stored) == "".join(f"{i} " for i in range(300))
        assert {e.tenant_id for e in stored} == {"t1"}

        other = RunEventPublisher(client.broker, new_id(), "t1")
        assert _jetstream(other.broker) is _jetstream(events.broker)  # one reply subscription per connection
        await other.flush()
