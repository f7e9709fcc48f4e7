"""A 30 s NATS outage in the middle of a streaming chat, on real processes (docs/reliability.md):
a NATS server of the test's own (its port, its JetStream store), the orchestrator and the
gateway as processes, a client reading the chat's SSE stream from the gateway, and a model
stand-in (gRPC, in this process) that streams one token and holds until the test releases it.

The server is SIGKILLed after the first token, the model released at once, so the rest of the
run is emitted while NATS is down; it stays down 30 s and is restarted on the same store. The
orchestrator is given an ack wait longer than the outage (`RUNS_ACK_WAIT_S` 120 s), so the
worker keeps its run and its event publisher rides the outage out (republishing each unstored
event until the run's deadline): the path this test is about. With the default 4 s ack wait the
run is redelivered instead and restarts its node in flight (`tests/test_faults.py`,
`test_nats_restarted_mid_run`). No wall-clock bound is asserted; timeouts only guard hangs."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from chat_stream import GATEWAY_CHAT, collect_sse
from orchestrator_testkit import BusClient, serve_held_model

from loom_common.db import _with_database
from loom_common.devstack import infra
from loom_common.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

sys.path.insert(0, str(Path(__file__).parents[1] / "services" / "gateway" / "tests"))
from gateway_stack import Stack, _sign_in, app_with_key  # noqa: E402  (the gateway tests' start-up helpers)

OUTAGE_S = 30.0
HANG_GUARD_S = 300.0  # far beyond any run of this test, loaded box included: only a hang reaches it

async def _fetchrow(db: str, sql: str, *args):
    conn = await asyncpg.connect(db)
    try:
        return await conn.fetchrow(sql, *args)
    finally:
        await conn.close()


async def _outage_mid_stream(nats: infra.EmbeddedNats, database_url: str, run_service, *, ack_wait_s: float | None,
                             wait_for_llm: bool) -> dict:
    """A streaming chat through the gateway; NATS SIGKILLed after its first token and the model
    released at once, NATS restarted on its store OUTAGE_S later (with `wait_for_llm`, no sooner than the
    llm node has finished while it is down: longer under load). Returns what the client saw,
    what the stream kept and both services' records of the run."""
    db = _with_database(database_url, f"outage_{uuid.uuid4().hex[:10]}")
    async with serve_held_model() as model:
        env = {"LOOM_NATS_URL": nats.url, "LOOM_DATABASE_URL": db, "LOOM_INFERENCE_ADDR": model.addr}
        lease = {"LOOM_ORCHESTRATOR_RUNS_ACK_WAIT_S": str(ack_wait_s)} if ack_wait_s is not None else {}
        run_service("orchestrator", env={**env, **lease})
        port, admin = infra.free_port(), infra.free_port()
        gateway = run_service("gateway", env={**env, "LOOM_GATEWAY_ADMIN_PORT": str(admin)}, http_port=port)
        stack = Stack(gateway_url=gateway.base_url, inference_addr=model.addr)
        _sign_in(stack)
        _, key = app_with_key(stack, "chatflow", GATEWAY_CHAT)
        seen: list[tuple[int, dict]] = []
        timeout = httpx.Timeout(HANG_GUARD_S, connect=30.0)
        async with httpx.AsyncClient(base_url=f"{gateway.base_url}/v1", timeout=timeout,
                                     headers={"Authorization": f"Bearer {key}"}) as http:
            async with http.stream("POST", "/chat-messages", json={"inputs": {}, "query": "hi", "user": "u",
                                                                   "response_mode": "streaming"}) as r:
                assert r.status_code == 200, await r.aread()
                lines = r.aiter_lines()
                await collect_sse(lines, seen, until="message")  # the first token: mid-stream
                run_id = seen[0][1]["task_id"]
                infra.stop_process(nats.proc, signal.SIGKILL)
                down = time.monotonic()
                model.release.set()  # the rest of the run is emitted while NATS is down
                if wait_for_llm:
                    # The run goes on without the bus: its model call ends and is journaled
                    # (Postgres is up), its events wait in the worker's publisher.
                    async def llm_done():
                        row = await _fetchrow(db, "SELECT status FROM orchestrator.node_executions "
                                                  "WHERE run_id = $1 AND key = 'llm'", run_id)
                        return row is not None and row["status"] == "succeeded"

                    await eventually(llm_done, "the llm node to finish while NATS is down", timeout_s=HANG_GUARD_S,
                                     interval_s=0.2)
                await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down)))
                await asyncio.to_thread(nats.start)  # same port, same JetStream store
                back = time.monotonic()
                await asyncio.wait_for(collect_sse(lines, seen, until="message_end"), HANG_GUARD_S)
                print(f"NATS down {back - down:.1f} s; recovery_s={time.monotonic() - back:.2f} "
                      f"(NATS restarted -> the client's message_end), model calls {model.calls}")

            conversation = seen[0][1]["conversation_id"]

            async def recorded():  # the gateway's record of the turn
                r = await http.get("/messages", params={"conversation_id": conversation, "user": "u"})
                data = r.json().get("data") if r.status_code == 200 else None
                return data if data and data[0].get("answer") else None

            messages = await eventually(recorded, "the gateway to record the turn", timeout_s=HANG_GUARD_S)

        async def finished(schema: str):
            row = await _fetchrow(db, f"SELECT * FROM {schema}.runs WHERE id = $1", run_id)
            return row if row is not None and row["status"] not in ("running", "accepted") else None

        orchestrator_run = await eventually(lambda: finished("orchestrator"), "the orchestrator's record",
                                            timeout_s=HANG_GUARD_S)
        gateway_run = await eventually(lambda: finished("gateway"), "the gateway's record", timeout_s=HANG_GUARD_S)
        async with BusClient(nats.url) as client:
            stored = await client.all_events(run_id)  # what the stream kept
        assert gateway.proc.poll() is None, gateway.log()
        return {"seen": seen, "stored": stored, "orchestrator": orchestrator_run, "gateway": gateway_run,
                "messages": messages, "model_calls": model.calls}


def _every_event_once_in_order(run: dict) -> list[str]:
    seqs = [s for s, _ in run["seen"]]
    assert seqs == list(range(1, len(seqs) + 1)), f"every event once, in order: {seqs}"
    assert [e.seq for e in run["stored"]] == seqs  # nothing lost, nothing doubled
    names = [d["event"] for _, d in run["seen"]]
    assert names.count("workflow_finished") == 1 and names.count("message_end") == 1 and names[-1] == "message_end"
    assert "error" not in names
    return names


async def test_a_30s_nats_outage_mid_stream_every_event_arrives_once_in_order(own_nats, database_url,
                                                                              run_service) -> None:
    """The worker keeps its run through the outage (ack wait 120 s): its publisher republishes
    the events emitted while NATS was down until they are stored, the client's stream goes on
    from where it was, and the run succeeds once with the whole answer of its one model call."""
    run = await _outage_mid_stream(own_nats, database_url, run_service, ack_wait_s=120, wait_for_llm=True)
    _every_event_once_in_order(run)
    answer = "".join(d["answer"] for _, d in run["seen"] if d["event"] == "message")
    assert answer == "call1 done" and run["model_calls"] == 1
    orchestrator_run, gateway_run = run["orchestrator"], run["gateway"]
    assert (orchestrator_run["status"], orchestrator_run["answer"]) == ("succeeded", "call1 done")
    assert orchestrator_run["deliveries"] == 1 and orchestrator_run["lost_events"] is None
    assert gateway_run["status"] == "succeeded" and gateway_run["total_tokens"] > 0
    assert [m["answer"] for m in run["messages"]] == ["call1 done"]


async def test_a_30s_nats_outage_mid_stream_with_the_default_lease(own_nats, database_url, run_service) -> None:
    """The deployment's 4 s ack wait: with no mark reaching NATS the worker gives its run up
    (unless it ended first: a loaded box decides), and once NATS is back the run is redelivered
    and its node in flight starts again. Still every event once, in order, one end, and the
    run's answer is its last model call's."""
    run = await _outage_mid_stream(own_nats, database_url, run_service, ack_wait_s=None, wait_for_llm=False)
    _every_event_once_in_order(run)
    calls = run["model_calls"]
    assert calls in (1, 2)
    assert (run["orchestrator"]["status"], run["orchestrator"]["answer"]) == ("succeeded", f"call{calls} done")
    assert run["gateway"]["status"] == "succeeded"
    answers = [m["answer"] for m in run["messages"]]
    assert len(answers) == 1 and answers[0].endswith(f"call{calls} done")
