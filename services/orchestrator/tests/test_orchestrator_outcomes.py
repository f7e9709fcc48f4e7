"""A run's outcome on runs.finished, from an in-process worker on its own NATS and the real
Postgres: published once the run's events are stored (its id naming the run, status and last
seq), and a run whose events the bus never stored is announced and recorded failed, never
succeeded."""

from __future__ import annotations

import asyncio
import time

import pytest
from faststream.nats import NatsBroker

from loom_common import bus
from loom_common.events import RunFinished
from loom_common.messaging import PublishNotAcknowledged
from loom_common.retry import RetryPolicy
from loom_orchestrator import events as events_module
from loom_orchestrator.engine.context import Services
from loom_orchestrator.handlers import build_router, runs_consumer
from loom_orchestrator.settings import OrchestratorSettings
from loom_orchestrator.testkit import BusClient, chain, node, tpl
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
