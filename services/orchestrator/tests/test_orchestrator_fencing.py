"""Fencing by delivery number, reproduced on a real NATS JetStream (its own server, so the
durable consumer and its short ack wait are this test's alone) and the real Postgres.

Worker A runs 2 runs at once (FastStream `max_workers=2`) and both slots are busy, so it
fetches the next run and holds it without heartbeats. JetStream redelivers that run after the
ack wait to worker B (delivery 2), which claims and starts it. When A frees a slot, its copy
(delivery 1) is stale: before fencing it ran the run a second time; now its claim is refused,
it runs nothing, and it neither acks nor naks the message (B settles it).

The workers, their router, the claim, the journal and the bus are the real ones; the tools
service is a stand-in that counts how often each run's http-request node executes and holds
it until the test lets it finish (the test's way to keep slots busy and a run in flight).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from faststream.nats import NatsBroker
from orchestrator_fakes import HELD_GRAPH, HeldTools
from orchestrator_testkit import BusClient

from loom_common import bus, messaging
from loom_orchestrator.engine.context import Services
from loom_orchestrator.handlers import build_router, runs_consumer
from loom_orchestrator.settings import OrchestratorSettings
from loom_orchestrator.worker import Worker

pytestmark = pytest.mark.integration

ACK_WAIT_S = 1.5
GRAPH = HELD_GRAPH


class ProbeWorker(Worker):
    """The real worker, noting each delivery it handled and how it settled the message."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.handled: list[tuple[str, int, list[str]]] = []  # (run id, delivery, settlements)

    async def handle(self, event, msg) -> None:
        settled: list[str] = []
        for name in ("ack", "nack", "reject"):
            real = getattr(msg, name)

            async def spy(*a, _real=real, _name=name, **kw):
                settled.append(_name)
                return await _real(*a, **kw)

            setattr(msg, name, spy)
        try:
            await super().handle(event, msg)
        finally:
            self.handled.append((event.run_id, messaging.deliveries(msg), settled))


async def _until(check, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_stale_delivery_held_past_the_ack_wait_does_not_run_the_run_again(nats, pool) -> None:
    settings = OrchestratorSettings(runs_ack_wait_s=ACK_WAIT_S)
    tools = HeldTools()
    brokers: list[NatsBroker] = []

    async def start_worker() -> ProbeWorker:
        broker = NatsBroker(nats)
        worker = ProbeWorker(broker, lambda: pool, settings, lambda: Services(tools=tools),
                             runs_consumer(ACK_WAIT_S))
        broker.include_router(build_router(worker, max_workers=2))
        await broker.start()
        brokers.append(broker)
        return worker

    async with BusClient(nats) as client:
        js = client.broker.connection.jetstream()

        async def consumer():
            return await js.consumer_info(bus.RUNS.name, bus.ORCHESTRATOR_RUNS.durable)

        try:
            a = await start_worker()
            busy = [await client.request(GRAPH) for _ in range(2)]
            await _until(lambda: _true(all(tools.calls[r] == 1 for r in busy)), "A's two slots busy")
            held = await client.request(GRAPH)

            async def a_holds_it():
                info = await consumer()
                return info.num_pending == 0 and info.num_ack_pending == 3

            await _until(a_holds_it, "A to fetch the third run while its slots are busy")
            assert tools.calls[held] == 0

            b = await start_worker()  # JetStream redelivers the held run to B after the ack wait
            await _until(lambda: _true(tools.calls[held] == 1), "B to run the redelivered run")
            assert held in b.active

            tools.gates[busy[0]].set()  # A frees a slot and takes its stale copy (delivery 1)
            await _until(lambda: _true(any(r == held for r, _, _ in a.handled) or tools.calls[held] > 1),
                         "A to handle its stale copy")
            assert tools.calls[held] == 1, "the stale delivery ran the run's node a second time"
            assert (held, 1, []) in a.handled  # refused at the claim: neither acked nor nacked (nor termed)
            await asyncio.sleep(0.5)
            assert tools.calls[held] == 1
            info = await consumer()
            assert info.num_ack_pending == 2 and info.num_redelivered == 1  # held run still B's, no delivery 3

            for gate in (held, busy[1]):
                tools.gates[gate].set()

            async def all_done():
                rows = await pool.fetch("SELECT status FROM runs WHERE id = ANY($1::text[])", [*busy, held])
                return len(rows) == 3 and {r["status"] for r in rows} == {"succeeded"}

            await _until(all_done, "the three runs to succeed")
            await _until(lambda: _ack_pending_is(consumer, 0), "every message to be acked")
        finally:
            for gate in tools.gates.values():
                gate.set()
            for broker in brokers:
                await broker.stop()

    assert (held, 2, ["ack"]) in b.handled
    run = await pool.fetchrow("SELECT worker, claimed_delivery, deliveries FROM runs WHERE id = $1", held)
    assert (run["worker"], run["claimed_delivery"], run["deliveries"]) == (b.id, 2, 1)
    starts = await pool.fetchval("SELECT starts FROM node_executions WHERE run_id = $1 AND key = 'h'", held)
    assert starts == 1
    events = await client_events(nats, held)
    assert [e.event for e in events].count("workflow_finished") == 1


async def _true(value: bool) -> bool:
    return value


async def _ack_pending_is(consumer, n: int) -> bool:
    return (await consumer()).num_ack_pending == n


async def client_events(nats_url: str, run_id: str):
    async with BusClient(nats_url) as client:
        return await client.all_events(run_id)
