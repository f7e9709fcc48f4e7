"""Fast recovery without false takeovers, on real `loom-orchestrator` processes over the real
NATS JetStream and Postgres (lease.py): a worker frozen (SIGSTOP, the outside view of CPU
starvation, a long GC pause or a blocked event loop) for less than its lease keeps its run; one
frozen for longer loses it to another worker, and when it wakes it writes nothing more of the
run. Each test has a NATS server of its own (`nats`): on the session's, its workers would also
take runs other tests left in the shared work queue. The model is a gRPC stand-in in this
process whose calls the test holds and releases. The lease's arithmetic itself is tested on a
fake clock in test_orchestrator_lease.py."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import asyncpg
import pytest
from orchestrator_testkit import CHAT_GRAPH, BusClient, HeldModel, serve_held_model

from loom_common.ids import new_id
from loom_common.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GRAPH = CHAT_GRAPH


@pytest.fixture
async def model():
    async with serve_held_model() as held:
        yield held


async def _run_row(database_url: str, run_id: str):
    """The run's row once its outcome is recorded (a moment after its last event)."""
    conn = await asyncpg.connect(database_url)
    try:
        async def finished():
            row = await conn.fetchrow("SELECT status, answer, deliveries, claimed_delivery FROM orchestrator.runs "
                                      "WHERE id = $1", run_id)
            return row if row is not None and row["status"] != "running" else None

        return await eventually(finished, f"run {run_id} to be recorded finished")
    finally:
        await conn.close()


async def _in_flight_on_a_then_b_ready(run_service, client: BusClient, model: HeldModel, env: dict):
    """Worker A alone takes a chat run whose llm call is held; then worker B starts (ready)."""
    a = run_service("orchestrator", env=env)
    run_id = await client.request(GRAPH, app_mode="chatflow", query="hi", conversation_id=new_id())
    await eventually(lambda: model.calls == 1, "worker A to call the model")
    b = run_service("orchestrator", env=env)
    return a, b, run_id


def _check_one_answer(events) -> None:
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), f"seqs not 1..n once each: {seqs}"
    names = [e.event for e in events]
    assert names.count("message_end") == 1 and names.count("workflow_finished") == 1


async def test_a_worker_frozen_shorter_than_its_lease_keeps_its_run(nats, database_url, run_service, model) -> None:
    # An 8 s ack wait: marks every 2 s, so a freeze of 3 s leaves ~2.75 s of slack for a loaded box.
    env = {"LOOM_NATS_URL": nats, "LOOM_INFERENCE_ADDR": model.addr, "LOOM_ORCHESTRATOR_RUNS_ACK_WAIT_S": "8"}
    async with BusClient(nats) as client:
        a, _b, run_id = await _in_flight_on_a_then_b_ready(run_service, client, model, env)
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(3.0)
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        await asyncio.sleep(8.0 + 1.0)  # past the ack wait: a wrong redelivery would have happened
        model.release.set()
        events = await client.events(run_id, until="message_end")
    assert model.calls == 1, "another worker took the run of a worker that was only slow"
    _check_one_answer(events)
    row = await _run_row(database_url, run_id)
    assert (row["status"], row["answer"], row["deliveries"]) == ("succeeded", "call1 done", 1)
    assert "lease lost" not in a.log()


async def test_a_worker_frozen_past_its_lease_loses_the_run_and_writes_nothing_more(
        nats, database_url, run_service, model) -> None:
    env = {"LOOM_NATS_URL": nats, "LOOM_INFERENCE_ADDR": model.addr}  # the default ack wait, 4 s
    async with BusClient(nats) as client:
        a, b, run_id = await _in_flight_on_a_then_b_ready(run_service, client, model, env)
        os.kill(a.proc.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            await eventually(lambda: model.calls == 2, "worker B to take the run over and call the model")
            print(f"takeover_s_while_frozen={time.monotonic() - frozen_at:.2f}")
            model.release.set()  # B's call finishes, and A's too once it wakes
            events = await client.events(run_id, until="message_end")
            assert (await _run_row(database_url, run_id))["status"] == "succeeded"
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        await eventually(lambda: "run lease lost" in a.log(), "worker A to notice it lost the lease")
        await asyncio.sleep(1.0)  # what A would write, it would write now
        after = await client.all_events(run_id)
        # A still works: a new run is served by one of the two workers.
        again = await client.request(GRAPH, app_mode="chatflow", query="hi", conversation_id=new_id())
        assert (await client.events(again, until="message_end"))[-1].event == "message_end"
    assert model.calls == 3
    _check_one_answer(events)
    assert [e.seq for e in after] == [e.seq for e in events], "worker A published after it lost the run"
    row = await _run_row(database_url, run_id)
    assert (row["status"], row["answer"], row["deliveries"], row["claimed_delivery"]) == \
        ("succeeded", "call2 done", 2, 2)
    assert a.proc.poll() is None and b.proc.poll() is None


async def test_an_existing_runs_consumer_gets_the_deployments_ack_wait_on_start(nats, run_service) -> None:
    """A durable created by an older deployment (30 s, the former default) is brought to 4 s when
    a worker starts: the lease's arithmetic holds only if the server's ack wait is the worker's."""
    from nats.js.api import ConsumerConfig

    from loom_common import bus

    async with BusClient(nats) as client:
        js = client.broker.connection.jetstream()
        c = bus.ORCHESTRATOR_RUNS
        await js.add_consumer(c.stream.name, config=ConsumerConfig(
            durable_name=c.durable, filter_subject=c.subject, ack_wait=30.0, max_deliver=c.max_deliver,
            ack_policy="explicit"))
        run_service("orchestrator", env={"LOOM_NATS_URL": nats})
        info = await js.consumer_info(c.stream.name, c.durable)
    assert info.config.ack_wait == 4.0
