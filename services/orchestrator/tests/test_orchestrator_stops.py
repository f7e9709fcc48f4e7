"""A stop requested before a worker takes the run, on a real NATS JetStream (its own server)
and the real Postgres: remembered by a worker that heard it (no lookup on the run's path to
its first node), looked up in the RUN_CONTROL stream by one that may not have. Plus the
memory's own rules (`stops.StopsHeard`)."""

from __future__ import annotations

import asyncio
import time

import pytest
from faststream.nats import NatsBroker
from orchestrator_fakes import HELD_GRAPH, HeldTools
from orchestrator_testkit import BusClient

from loom_orchestrator import worker as worker_module
from loom_orchestrator.engine.context import Services
from loom_orchestrator.handlers import build_router, runs_consumer
from loom_orchestrator.settings import OrchestratorSettings
from loom_orchestrator.stops import StopsHeard
from loom_orchestrator.worker import Worker

GRAPH = HELD_GRAPH


def test_the_memory_covers_runs_stored_after_it_began_listening_and_after_what_it_forgot() -> None:
    stops = StopsHeard(capacity=2, skew_s=1.0)
    assert not stops.covers(100.0)  # not listening yet
    stops.listening(now=100.0)
    assert not stops.covers(100.5)  # within the clock-skew margin
    assert stops.covers(102.0) and not stops.covers(None)
    stops.heard("a", "stopped", now=110.0)
    stops.heard("b", "stopped", now=111.0)
    stops.heard("c", "user", now=112.0)  # over capacity: a (heard at 110) is forgotten
    assert stops.reason("a") is None
    assert not stops.covers(105.0)  # a's stop could have been for a run stored before 110
    assert stops.covers(112.0)
    assert stops.reason("c") == "user" and stops.reason("c") is None  # used once


@pytest.fixture
def lookups(monkeypatch) -> list[str]:
    """Run ids whose stop was looked up in the stream."""
    seen: list[str] = []
    real = worker_module.cancel_requested

    async def spy(broker, run_id):
        seen.append(run_id)
        return await real(broker, run_id)

    monkeypatch.setattr(worker_module, "cancel_requested", spy)
    return seen


async def _status(pool, run_id: str, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = await pool.fetchval("SELECT status FROM runs WHERE id = $1", run_id)
        if status in ("succeeded", "failed", "stopped"):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


async def _worker(nats: str, pool, tools: HeldTools) -> tuple[NatsBroker, Worker]:
    broker = NatsBroker(nats)
    worker = Worker(broker, lambda: pool, OrchestratorSettings(), lambda: Services(tools=tools), runs_consumer())
    broker.include_router(build_router(worker, max_workers=1))
    await broker.start()
    return broker, worker


async def test_a_stop_heard_while_the_run_waited_stops_it_without_a_lookup(nats, pool, lookups) -> None:
    tools = HeldTools()
    async with BusClient(nats) as client:
        broker, worker = await _worker(nats, pool, tools)
        worker.stops.listening(now=time.time() - 60)  # as if listening for a minute
        try:
            busy = await client.request(GRAPH)
            deadline = time.monotonic() + 20
            while tools.calls[busy] == 0:  # its one slot is taken
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            waiting = await client.request(GRAPH)
            await client.cancel(waiting)
            deadline = time.monotonic() + 20
            while waiting not in worker.stops:  # heard while the run waits for the slot
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            tools.gates[busy].set()
            assert await _status(pool, waiting) == "stopped"
            assert await _status(pool, busy) == "succeeded"
        finally:
            await broker.stop()
    assert tools.calls[waiting] == 0  # its node never ran
    assert waiting not in lookups


async def test_a_stop_published_before_any_worker_listened_is_looked_up(nats, pool, lookups) -> None:
    tools = HeldTools()
    async with BusClient(nats) as client:
        run_id = await client.request(GRAPH)
        await client.cancel(run_id)
        broker, _ = await _worker(nats, pool, tools)  # never heard it, not marked listening
        try:
            assert await _status(pool, run_id) == "stopped"
        finally:
            await broker.stop()
    assert tools.calls[run_id] == 0
    assert run_id in lookups
