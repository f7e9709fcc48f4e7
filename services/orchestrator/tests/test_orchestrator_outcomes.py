"""A run's outcome on runs.finished, from an in-process worker on its own NATS and the real
Postgres: published once the run's events are stored (its id naming the run, status and last
seq), and a run whose events the bus never stored is announced and recorded failed, never
succeeded."""

from __future__ import annotations

import asyncio
import time

import pytest
from faststream.nats import NatsBroker
from orchestrator_testkit import BusClient, chain, node, tpl

from loom_common import bus
from loom_common.events import AnnotationReply, RunFinished
from loom_common.messaging import PublishNotAcknowledged
from loom_common.retry import RetryPolicy
from loom_orchestrator import events as events_module
from loom_orchestrator import worker as worker_module
from loom_orchestrator.engine.context import Services
from loom_orchestrator.handlers import build_router, runs_consumer
from loom_orchestrator.settings import OrchestratorSettings
from loom_orchestrator.worker import Worker

pytestmark = pytest.mark.integration

GRAPH = {"nodes": [node("start", "start"), tpl("a", "hello"),
                   node("end", "end", outputs=[{"variable": "said", "value_selector": ["a", "output"]}])],
         "edges": chain("start", "a", "end")}


async def _worker(nats: str, pool, **settings) -> NatsBroker:
    broker = NatsBroker(nats)
    worker = Worker(broker, lambda: pool, OrchestratorSettings(**settings), lambda: Services(), runs_consumer())
    broker.include_router(build_router(worker, max_workers=1))
    await broker.start()
    return broker


async def _outcome(client: BusClient, run_id: str) -> RunFinished:
    js = client.broker.connection.jetstream()
    deadline = time.monotonic() + 30
    while True:
        try:
            msg = await js.get_last_msg(bus.RUN_OUTCOMES.name, bus.RUNS_FINISHED)
            end = RunFinished.model_validate_json(msg.data)
            if end.run_id == run_id:
                return end
        except Exception:
            pass
        assert time.monotonic() < deadline, "no outcome on runs.finished"
        await asyncio.sleep(0.05)


async def test_a_run_ends_with_its_outcome_on_runs_finished(nats, pool) -> None:
    async with BusClient(nats) as client:
        broker = await _worker(nats, pool)
        try:
            run_id = await client.request(GRAPH)
            events = await client.events(run_id)
            end = await _outcome(client, run_id)
        finally:
            await broker.stop()
    assert (end.status, end.outputs, end.error) == ("succeeded", {"said": "hello"}, None)
    assert end.last_seq == events[-1].seq and end.event_id == f"{run_id}.succeeded.{end.last_seq}"
    assert end.total_steps == 3 and end.usage.total_tokens == 0


async def test_a_run_whose_events_are_never_stored_is_recorded_failed(nats, pool, monkeypatch) -> None:
    """NATS answers no publish on the run's subject until the run's deadline (here 3 s of wall
    time): each event is given up, and the run, which did all its work, is announced on
    runs.finished and recorded failed with the reason, never succeeded."""
    real = events_module.messaging.publish

    async def no_run_events(broker, subject, event, **kw):
        if subject == bus.run_events(event.run_id):
            raise PublishNotAcknowledged("no ack from the stream")
        return await real(broker, subject, event, **kw)

    class NoAck:
        async def publish_async(self, *a, **kw):
            raise ConnectionError("not sent")

    monkeypatch.setattr(events_module, "_jetstream", lambda broker: NoAck())
    monkeypatch.setattr(events_module.messaging, "publish", no_run_events)
    monkeypatch.setattr(events_module, "REPUBLISH_POLICY",
                        RetryPolicy(initial_interval_s=0.05, maximum_interval_s=0.2, maximum_attempts=None))
    monkeypatch.setattr(events_module, "MIN_PATIENCE_S", 0.5)
    async with BusClient(nats) as client:
        broker = await _worker(nats, pool, max_wall_s=3.0)
        try:
            run_id = await client.request(GRAPH)
            end = await _outcome(client, run_id)
        finally:
            await broker.stop()
    assert end.status == "failed" and "could not be published" in (end.error or "")
    assert end.outputs == {"said": "hello"}  # the work was done: only its announcement failed
    row = await pool.fetchrow("SELECT status, error FROM runs WHERE id = $1", run_id)
    assert row["status"] == "failed" and "could not be published" in row["error"]


ANNOTATED = {"app_mode": "chatflow", "query": "q", "conversation_id": "c-lost", "message_id": "m-lost",
             "annotation_reply": AnnotationReply(id="ann-1", answer="annotated", score=0.9)}


@pytest.mark.parametrize("request_kw", [{}, ANNOTATED], ids=["workflow", "annotation-reply-chat"])
async def test_a_run_whose_events_and_outcome_are_lost_past_its_deadline_fails_when_redelivered(
        nats, pool, monkeypatch, request_kw) -> None:
    """NATS stores nothing of the run past its deadline, its outcome included, so the run's
    message is redelivered once the bus is back. The redelivery cannot see that events are
    missing (it numbers on from the last stored seq and replays finished nodes unannounced):
    without the first delivery's note in Postgres an annotation reply (no wall-time check)
    was replayed to a success, and a workflow failed for its wall time, a wrong reason. The
    redelivery reads the note and fails the run with the reason, announced (code
    run_events_lost) and recorded."""
    down = True  # the bus stores nothing of the run (events, outcome) while set
    real = events_module.messaging.publish

    async def while_down(broker, subject, event, **kw):
        if down and subject in (bus.run_events(event.run_id), bus.RUNS_FINISHED):
            raise PublishNotAcknowledged("no ack from the stream")
        return await real(broker, subject, event, **kw)

    real_js = events_module._jetstream

    class NoAckWhileDown:
        def __init__(self, broker):
            self.js = real_js(broker)

        async def publish_async(self, *a, **kw):
            if down:
                raise ConnectionError("not sent")
            return await self.js.publish_async(*a, **kw)

    real_finished = worker_module.publish_finished

    async def outcome_then_back(*a, **kw):
        nonlocal down
        try:
            return await real_finished(*a, **kw)
        except Exception:
            down = False  # the outcome could not be published either: the bus comes back now
            raise

    monkeypatch.setattr(events_module, "_jetstream", NoAckWhileDown)
    monkeypatch.setattr(events_module.messaging, "publish", while_down)
    monkeypatch.setattr(worker_module, "publish_finished", outcome_then_back)
    monkeypatch.setattr(events_module, "REPUBLISH_POLICY",
                        RetryPolicy(initial_interval_s=0.05, maximum_interval_s=0.2, maximum_attempts=None))
    monkeypatch.setattr(events_module, "MIN_PATIENCE_S", 0.5)
    async with BusClient(nats) as client:
        broker = await _worker(nats, pool, max_wall_s=2.0)
        try:
            run_id = await client.request(GRAPH, **request_kw)
            end = await _outcome(client, run_id)
            events = await client.events(run_id)
        finally:
            await broker.stop()
    assert not down  # the first delivery gave up on its outcome: this one came from the redelivery
    row = await pool.fetchrow("SELECT status, error, lost_events, deliveries FROM runs WHERE id = $1", run_id)
    assert row["deliveries"] >= 2 and row["lost_events"] is not None  # claimed again after the give-up
    assert row["status"] == "failed" and row["error"] == row["lost_events"]
    assert "could not be published before its deadline" in row["error"]
    assert (end.status, end.error, end.error_code) == ("failed", row["error"], "run_events_lost")
    # Nothing of the first delivery was stored; the redelivery announces the failure.
    assert [(e.seq, e.event) for e in events] == [(1, "error"), (2, "workflow_finished")]
    assert events[0].data.code == "run_events_lost" and events[1].data.status == "failed"
