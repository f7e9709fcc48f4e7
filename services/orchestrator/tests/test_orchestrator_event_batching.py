"""The run event publisher's batching on the real NATS JetStream: events emitted together share
one bus message (a RunEventBatch), a node's consecutive text deltas merge into one event, the
run's first text is sent at once (never held for the batch's budget), `flush` sends what is
left, and a batch that is not acked is published again until stored, once, its events intact.
Nothing is sent before `ready` (the run's claim on disk) returns, nothing at all if it fails.
No test reads a clock: the budget is set out of reach where a test needs a batch held."""

from __future__ import annotations

import asyncio

import pytest
from orchestrator_testkit import BusClient

from loom_common import bus
from loom_common.events import RunEventBatch, read_run_events
from loom_common.ids import new_id
from loom_common.messaging import last_run_event_seq
from loom_common.testing import eventually
from loom_orchestrator import events as events_module
from loom_orchestrator.events import RunEventPublisher

pytestmark = pytest.mark.integration

NODE = {"node_id": "llm", "node_type": "llm", "title": "LLM"}


async def _messages(client: BusClient, run_id: str) -> list[list[int]]:
    """The seqs of each stored bus message of the run, in stream order."""
    sub = await client.broker.connection.jetstream().subscribe(bus.run_events(run_id), ordered_consumer=True)
    out = []
    try:
        while True:
            msg = await sub.next_msg(timeout=1.0)
            out.append([ev.seq for ev in read_run_events(msg.data)])
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return out


async def _stored_up_to(client: BusClient, run_id: str, seq: int) -> bool:
    return await last_run_event_seq(client.broker, run_id) == seq


def _start_up(events: RunEventPublisher) -> None:
    events.emit("workflow_started", {"id": "r", "workflow_run_id": "r"})
    events.emit("node_started", {**NODE, "id": "e1"}, "llm")


def _say(events: RunEventPublisher, text: str, node: str = "llm") -> None:
    events.emit("message", {"id": "m", "message_id": "m", "conversation_id": "c", "answer": text}, node)


async def test_the_first_text_goes_at_once_with_the_start_up_and_later_deltas_merge(nats_url, monkeypatch) -> None:
    monkeypatch.setattr(events_module, "BATCH_WAIT_S", 3600.0)  # nothing is sealed by its budget here
    monkeypatch.setattr(events_module, "TEXT_WAIT_S", 3600.0)
    async with BusClient(nats_url) as client:
        run_id = new_id()
        events = RunEventPublisher(client.broker, run_id, "t1")
        _start_up(events)
        _say(events, "Once")  # the first token: sent with the start-up events, at once
        await eventually(lambda: _stored_up_to(client, run_id, 3), "the first text stored before any flush")
        for word in (" upon", " a", " time"):
            _say(events, word)
        await asyncio.sleep(0.2)
        assert await last_run_event_seq(client.broker, run_id) == 3  # held: the batch is open
        events.emit("node_finished", {**NODE, "id": "e1", "outputs": {"text": "Once upon a time"}}, "llm")
        events.emit("workflow_finished", {"id": "r", "workflow_run_id": "r"})
        await events.flush()  # the run's end: whatever is open goes now
        assert await _messages(client, run_id) == [[1, 2, 3], [4, 5, 6]]
        stored = await client.all_events(run_id)
    assert [(e.seq, e.event) for e in stored] == [(1, "workflow_started"), (2, "node_started"), (3, "message"),
                                                 (4, "message"), (5, "node_finished"), (6, "workflow_finished")]
    assert [e.data.answer for e in stored if e.event == "message"] == ["Once", " upon a time"]
    assert events.streamed == ["Once", " upon", " a", " time"] and events.first_text_at == stored[2].occurred_at


async def test_deltas_merge_only_within_one_nodes_text_and_at_most_text_max_pieces(nats_url, monkeypatch) -> None:
    monkeypatch.setattr(events_module, "BATCH_WAIT_S", 3600.0)
    monkeypatch.setattr(events_module, "TEXT_WAIT_S", 3600.0)
    monkeypatch.setattr(events_module, "TEXT_MAX_PIECES", 4)
    async with BusClient(nats_url) as client:
        run_id = new_id()
        events = RunEventPublisher(client.broker, run_id, "t1")
        _say(events, "0")                    # seq 1, alone (the first text)
        for i in range(1, 7):               # 1-4 fill one event (sealed full), 5-6 start the next
            _say(events, str(i))
        _say(events, "a", node="other")      # another node's text: an event of its own
        _say(events, "7")
        events.emit("text_chunk", {"text": "t", "from_variable_selector": ["llm", "text"]}, "llm")
        events.emit("text_chunk", {"text": "u", "from_variable_selector": ["x", "text"]}, "llm")  # another source
        events.emit("node_retry", {**NODE, "error": "e"}, "llm")
        _say(events, "8")
        _say(events, "9")
        await events.flush()
        stored = await client.all_events(run_id)
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    assert [(e.node_id, e.event, getattr(e.data, "answer", getattr(e.data, "text", None))) for e in stored] == [
        ("llm", "message", "0"), ("llm", "message", "1234"), ("llm", "message", "56"), ("other", "message", "a"),
        ("llm", "message", "7"), ("llm", "text_chunk", "t"), ("llm", "text_chunk", "u"), ("llm", "node_retry", None),
        ("llm", "message", "89")]


async def test_a_batch_seals_itself_after_its_budget(nats_url, monkeypatch) -> None:
    monkeypatch.setattr(events_module, "BATCH_WAIT_S", 0.05)
    async with BusClient(nats_url) as client:
        run_id = new_id()
        events = RunEventPublisher(client.broker, run_id, "t1")
        _start_up(events)  # no text follows: the budget alone sends them, as one message
        await eventually(lambda: _stored_up_to(client, run_id, 2), "the start-up events sent without a flush")
        assert await _messages(client, run_id) == [[1, 2]]
        await events.flush()


async def test_a_batch_opened_by_a_text_delta_keeps_the_text_budget(nats_url, monkeypatch) -> None:
    """Deltas after the first text wait `TEXT_WAIT_S` for more (fewer messages per streamed
    token), other events `BATCH_WAIT_S`."""
    monkeypatch.setattr(events_module, "BATCH_WAIT_S", 0.01)
    monkeypatch.setattr(events_module, "TEXT_WAIT_S", 3600.0)
    async with BusClient(nats_url) as client:
        run_id = new_id()
        events = RunEventPublisher(client.broker, run_id, "t1")
        _start_up(events)
        await eventually(lambda: _stored_up_to(client, run_id, 2), "the start-up events sent by their budget")
        _say(events, "Once")  # the first text: at once
        await eventually(lambda: _stored_up_to(client, run_id, 3), "the first text sent at once")
        _say(events, " upon")
        events.emit("node_finished", {**NODE, "id": "e1", "outputs": {"text": "Once upon"}}, "llm")
        await asyncio.sleep(0.2)
        assert await last_run_event_seq(client.broker, run_id) == 3  # held by the text's budget
        monkeypatch.setattr(events_module, "TEXT_WAIT_S", 0.01)
        _say(events, "!", node="other")  # the held batch goes at flush; a new one opens with text
        await events.flush()
        assert await _messages(client, run_id) == [[1, 2], [3], [4, 5, 6]]
        events = RunEventPublisher(client.broker, run_id, "t1", start_seq=6)
        _say(events, "more")  # a first text for this publisher: at once
        _say(events, " text")
        await eventually(lambda: _stored_up_to(client, run_id, 8), "the delta sent by the text's budget")
        await events.flush()


async def test_an_oversized_batch_goes_out_one_event_per_message(nats_url, monkeypatch) -> None:
    monkeypatch.setattr(events_module, "BATCH_MAX_BYTES", 600)
    async with BusClient(nats_url) as client:
        run_id = new_id()
        events = RunEventPublisher(client.broker, run_id, "t1")
        _start_up(events)
        events.emit("node_finished", {**NODE, "id": "e1", "outputs": {"text": "x" * 700}}, "llm")
        await events.flush()
        assert await _messages(client, run_id) == [[1], [2], [3]]


async def test_a_batch_refused_then_accepted_is_stored_once_with_every_event(nats_url, unacked_stream) -> None:
    """The fast path fails (not even written) and the slow path is refused a few times, as in a
    NATS outage: the batch is published again under its id until stored, then once."""
    outage = unacked_stream(5)
    async with BusClient(nats_url) as client:
        run_id = new_id()
        events = RunEventPublisher(client.broker, run_id, "t1")
        _start_up(events)
        _say(events, "Hi")
        _say(events, " there")
        events.emit("workflow_finished", {"id": "r", "workflow_run_id": "r"})
        await events.flush()
        assert outage.refusals == 0 and events.lost == []
        first = outage.sent[0]
        assert isinstance(first, RunEventBatch) and all(m.event_id == first.event_id for m in outage.sent[:6])
        # Once more, past the stand-in: deduplicated by the stream.
        await outage.real(client.broker, bus.run_events(run_id), first, stream=bus.RUN_EVENTS.name)
        assert await _messages(client, run_id) == [[1, 2, 3], [4, 5]]
        stored = await client.all_events(run_id)
    assert [(e.seq, e.event) for e in stored] == [(1, "workflow_started"), (2, "node_started"), (3, "message"),
                                                 (4, "message"), (5, "workflow_finished")]


async def test_nothing_is_sent_before_ready_returns_and_nothing_at_all_when_it_fails(nats_url) -> None:
    async with BusClient(nats_url) as client:
        run_id, asked, gate = new_id(), asyncio.Event(), asyncio.Event()

        async def ready() -> None:
            asked.set()
            await gate.wait()

        events = RunEventPublisher(client.broker, run_id, "t1", ready=ready)
        _start_up(events)
        _say(events, "Once")  # the first text: sealed at once, held by `ready`
        await asyncio.wait_for(asked.wait(), 10)
        assert await last_run_event_seq(client.broker, run_id) == 0
        gate.set()
        await eventually(lambda: _stored_up_to(client, run_id, 3), "the events stored once ready")
        await events.flush()

        failed_id = new_id()

        async def unready() -> None:
            raise ConnectionError("postgres away")

        failing = RunEventPublisher(client.broker, failed_id, "t1", ready=unready)
        _start_up(failing)
        _say(failing, "Once")
        _say(failing, " upon")
        with pytest.raises(ConnectionError):
            await failing.flush()
        assert await last_run_event_seq(client.broker, failed_id) == 0
