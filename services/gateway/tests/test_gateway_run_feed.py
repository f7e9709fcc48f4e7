"""The gateway's live run feed (core NATS subscription) against the real NATS server: events
arrive in seq order, republished ones once, and whatever the subscription missed is read
from the stream instead (a gap, or a quiet spell after events it never saw). A bus message
may hold a batch of events (the orchestrator's RunEventBatch): each is delivered once, in seq
order, and a resume from a seq inside a batch starts right after it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from faststream.nats import NatsBroker

from loom_common import bus, messaging
from loom_common.events import RunEvent, RunEventBatch
from loom_gateway.bus.runs import LiveFeed, NatsRunBus


@pytest.fixture
async def run_bus(nats_url: str):
    broker = NatsBroker(nats_url)
    await broker.connect()
    await messaging.ensure_streams(broker)
    yield NatsRunBus(broker)
    await broker.stop()


async def _publish(run_bus: NatsRunBus, run_id: str, seq: int) -> None:
    ev = RunEvent(tenant_id="t", run_id=run_id, seq=seq, event="message", task_id=run_id, data={"answer": str(seq)})
    await messaging.publish(run_bus.broker, bus.run_events(run_id), ev, stream=bus.RUN_EVENTS.name)


async def _publish_batch(run_bus: NatsRunBus, run_id: str, seqs: range) -> RunEventBatch:
    batch = RunEventBatch(tenant_id="t", run_id=run_id, events=[
        RunEvent(tenant_id="t", run_id=run_id, seq=seq, event="message", task_id=run_id, data={"answer": str(seq)})
        for seq in seqs])
    await messaging.publish(run_bus.broker, bus.run_events(run_id), batch, stream=bus.RUN_EVENTS.name)
    return batch


async def _read(feed, n: int) -> list[int]:
    out = []
    async with asyncio.timeout(10):
        while len(out) < n:
            out.append((await anext(feed)).seq)
    return out


async def test_live_events_in_order_and_a_republished_one_once(run_bus: NatsRunBus) -> None:
    run_id = uuid.uuid4().hex
    feed = await run_bus.open(run_id)
    try:
        for seq in (1, 2):
            await _publish(run_bus, run_id, seq)
        # A lost ack makes the orchestrator publish seq 2 again: the stream dedups it, a core
        # subscriber sees it twice.
        await run_bus.broker.connection.publish(bus.run_events(run_id), RunEvent(
            tenant_id="t", run_id=run_id, seq=2, event="message", task_id=run_id).model_dump_json().encode())
        await _publish(run_bus, run_id, 3)
        assert await _read(feed, 3) == [1, 2, 3]
        assert isinstance(feed, LiveFeed) and feed.stored is None  # never needed the stream
    finally:
        await feed.aclose()


async def test_a_gap_is_filled_from_the_stream(run_bus: NatsRunBus) -> None:
    run_id = uuid.uuid4().hex
    for seq in (1, 2):  # published before the live subscription existed: it never sees them
        await _publish(run_bus, run_id, seq)
    feed = await run_bus.open(run_id)
    try:
        await _publish(run_bus, run_id, 3)
        await _publish(run_bus, run_id, 4)
        assert await _read(feed, 4) == [1, 2, 3, 4]
        assert feed.stored is not None
    finally:
        await feed.aclose()


async def test_missed_last_events_are_found_after_a_quiet_spell(run_bus: NatsRunBus) -> None:
    run_id = uuid.uuid4().hex
    feed = await run_bus.open(run_id)
    feed.check_s = 0.2
    try:
        await _publish(run_bus, run_id, 1)
        assert await _read(feed, 1) == [1]
        # Seq 2 reaches the stream but not this subscription (as across a reconnect), and
        # nothing follows it that would reveal the gap.
        await feed.sub.unsubscribe()
        feed.sub = await run_bus.broker.connection.subscribe("loom.test.nothing")
        await _publish(run_bus, run_id, 2)
        assert await _read(feed, 1) == [2]
    finally:
        await feed.aclose()


async def test_events_stored_out_of_order_are_read_in_seq_order(run_bus: NatsRunBus) -> None:
    """A NATS node lost with acks in flight: the orchestrator republishes those events, stored
    after later ones. Readers of the stream (a resumed stream, a replay) still get 1..n in order;
    a seq never stored is waited for, then skipped."""
    run_id = uuid.uuid4().hex
    for seq in (1, 2, 4, 5, 3, 2):  # 3 stored late; 2 again (a republish outside the dedup window)
        await _publish(run_bus, run_id, seq)
    assert [ev.seq async for ev in run_bus.events(run_id, 0, follow=False)] == [1, 2, 3, 4, 5]
    assert [ev.seq async for ev in run_bus.events(run_id, 1, follow=False)] == [2, 3, 4, 5]
    live = run_bus.events(run_id, 0)
    try:
        assert await _read(live, 5) == [1, 2, 3, 4, 5]
    finally:
        await live.aclose()
    gap = uuid.uuid4().hex
    for seq in (1, 3):  # 2 never stored
        await _publish(run_bus, gap, seq)
    assert [ev.seq async for ev in run_bus.events(gap, 0, follow=False)] == [1, 3]


async def test_batched_events_arrive_one_by_one_in_order_and_a_republished_batch_once(run_bus: NatsRunBus) -> None:
    run_id = uuid.uuid4().hex
    feed = await run_bus.open(run_id)
    try:
        await _publish(run_bus, run_id, 1)
        batch = await _publish_batch(run_bus, run_id, range(2, 6))
        # A lost ack: the same batch again (the stream dedups it; a core subscriber sees it twice).
        await run_bus.broker.connection.publish(bus.run_events(run_id), batch.model_dump_json().encode())
        await _publish_batch(run_bus, run_id, range(6, 8))
        assert await _read(feed, 7) == [1, 2, 3, 4, 5, 6, 7]
        assert isinstance(feed, LiveFeed) and feed.stored is None
    finally:
        await feed.aclose()
    stored = [(ev.seq, ev.data.answer) async for ev in run_bus.events(run_id, 0, follow=False)]
    assert stored == [(seq, str(seq)) for seq in range(1, 8)]


async def test_a_resume_from_inside_a_batch_reads_every_later_event_once(run_bus: NatsRunBus) -> None:
    """Last-Event-ID names one event of a batch: the client gets the batch's later events and
    what follows, each once (live or from the stream)."""
    run_id = uuid.uuid4().hex
    await _publish_batch(run_bus, run_id, range(1, 5))
    await _publish_batch(run_bus, run_id, range(5, 9))
    assert [ev.seq async for ev in run_bus.events(run_id, 2, follow=False)] == [3, 4, 5, 6, 7, 8]
    assert [ev.seq async for ev in run_bus.events(run_id, 5, follow=False)] == [6, 7, 8]
    live = run_bus.events(run_id, 6)
    try:
        assert await _read(live, 2) == [7, 8]
        await _publish_batch(run_bus, run_id, range(9, 11))
        assert await _read(live, 2) == [9, 10]
    finally:
        await live.aclose()


async def test_a_batch_after_a_gap_hands_over_to_the_stream(run_bus: NatsRunBus) -> None:
    run_id = uuid.uuid4().hex
    await _publish_batch(run_bus, run_id, range(1, 3))  # before the live subscription: never seen live
    feed = await run_bus.open(run_id)
    try:
        await _publish_batch(run_bus, run_id, range(3, 6))
        assert await _read(feed, 5) == [1, 2, 3, 4, 5]
        assert feed.stored is not None
    finally:
        await feed.aclose()


async def test_a_feed_says_when_the_rest_of_a_batch_is_ready(run_bus: NatsRunBus) -> None:
    """`ready`: the next event can be had without waiting for the bus (sse.run_events then
    writes a batch's frames in one go); never true across a gap or after a batch's last event."""
    run_id = uuid.uuid4().hex
    feed = await run_bus.open(run_id)
    try:
        assert not feed.ready
        await _publish_batch(run_bus, run_id, range(1, 4))
        assert await _read(feed, 1) == [1] and feed.ready
        assert await _read(feed, 2) == [2, 3] and not feed.ready
        await _publish_batch(run_bus, run_id, range(5, 7))  # 4 missing: the stream must be asked
        await asyncio.sleep(0.2)
        assert not feed.ready
    finally:
        await feed.aclose()
    stored = run_bus.events(run_id, 0, follow=False)
    assert [ev.seq async for ev in stored] == [1, 2, 3, 5, 6]
