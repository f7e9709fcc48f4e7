"""The orchestrator as real processes on the real NATS JetStream and Postgres: a run end to
end with ordered events and its journal, stop, and the crash test (SIGKILL mid-run, another
worker finishes the run exactly once without re-running finished nodes)."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import pytest
from orchestrator_testkit import BusClient, chain, node, tpl

from loom_common import bus
from loom_common.devstack import infra
from loom_common.events import read_run_events

pytestmark = pytest.mark.integration

START = node("start", "start", variables=[{"variable": "n", "type": "number", "required": False}])


async def _row(database_url: str, sql: str, *args):
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _wait_status(database_url: str, run_id: str, statuses: tuple[str, ...], timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = await _row(database_url, "SELECT status FROM orchestrator.runs WHERE id = $1", run_id)
        if rows and rows[0]["status"] in statuses:
            return rows[0]["status"]
        await asyncio.sleep(0.2)
    raise AssertionError(f"run {run_id} never reached {statuses}")


async def test_run_end_to_end_events_in_order_and_journal(nats_url, database_url, run_service) -> None:
    run_service("orchestrator")
    g = {
        "nodes": [
            START,
            tpl("a", "n={{n}}", n=["start", "n"]),
            node("it", "iteration", iterator_selector=["sys", "files"], output_selector=["x", "output"]),
            node("is", "iteration-start", parent="it"),
            tpl("x", "{{f}}", f=["it", "index"]) | {"parent_id": "it"},
            node(
                "end",
                "end",
                outputs=[
                    {"variable": "a", "value_selector": ["a", "output"]},
                    {"variable": "it", "value_selector": ["it", "output"]},
                ],
            ),
        ],
        "edges": [*chain("start", "a", "it", "end"), *chain("is", "x")],
    }
    async with BusClient(nats_url) as client:
        run_id = await client.request(g, inputs={"n": 5}, files=[{"f": 1}, {"f": 2}])
        events = await client.events(run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].event == "workflow_started" and events[-1].event == "workflow_finished"
    assert events[-1].data.status == "succeeded" and events[-1].data.outputs == {"a": "n=5", "it": ["0", "1"]}
    rows = await _row(
        database_url,
        "SELECT key, status, outputs FROM orchestrator.node_executions WHERE run_id = $1 ORDER BY idx",
        run_id,
    )
    assert [r["key"] for r in rows] == ["start", "a", "it", "it[0]/is", "it[0]/x", "it[1]/is", "it[1]/x", "end"]
    assert {r["status"] for r in rows} == {"succeeded"}
    run = (await _row(database_url, "SELECT * FROM orchestrator.runs WHERE id = $1", run_id))[0]
    assert run["status"] == "succeeded" and run["total_steps"] == 8


async def test_invalid_graph_fails_the_run_with_the_node_named(nats_url, database_url, run_service) -> None:
    run_service("orchestrator")
    async with BusClient(nats_url) as client:
        run_id = await client.request({"nodes": [START, node("l", "llm", model={})], "edges": []})
        events = await client.events(run_id)
    assert events[-1].data.status == "failed"
    assert "node 'l' (llm): data.model.name: Field required" in events[-1].data.error


async def test_stop_cancels_a_running_run(nats_url, database_url, run_service) -> None:
    run_service("orchestrator")
    # A long deterministic run: a loop of 500 journaled rounds.
    g = {
        "nodes": [
            START,
            node("lp", "loop", loop_count=500, loop_variables=[{"label": "n", "value": 0}]),
            node("ls", "loop-start", parent="lp"),
            node(
                "inc",
                "assigner",
                parent="lp",
                items=[{"variable_selector": ["lp", "n"], "operation": "+=", "value": 1}],
            ),
            tpl("t", "{{n}}", n=["lp", "n"]) | {"parent_id": "lp"},
            node("end", "end", outputs=[]),
        ],
        "edges": [*chain("start", "lp", "end"), *chain("ls", "inc", "t")],
    }
    async with BusClient(nats_url) as client:
        run_id = await client.request(g)
        js = client.broker.connection.jetstream()
        sub = await js.subscribe(bus.run_events(run_id), ordered_consumer=True)
        # Stop it once it is in its loop, at once: its 500 rounds take well under a second on an
        # idle box (run events are batched: the loop no longer waits on a publish per event).
        while not any(e.event == "loop_next" for e in read_run_events((await sub.next_msg(timeout=30)).data)):
            pass
        await sub.unsubscribe()
        await client.cancel(run_id)
        events = await client.events(run_id, timeout_s=30)
    assert events[-1].data.status == "stopped"
    assert await _wait_status(database_url, run_id, ("stopped",)) == "stopped"
    done = await _row(database_url, "SELECT count(*) AS n FROM orchestrator.node_executions WHERE run_id = $1", run_id)
    assert done[0]["n"] < 1000  # stopped well before its 500 rounds


class SlowServer:
    """A loopback HTTP server whose every request takes `delay_s`; counts hits per path."""

    def __init__(self, delay_s: float, hold: str | None = None) -> None:
        hits: dict[str, int] = {}
        self.hits = hits
        self.released = released = threading.Event()  # `hold` (a path) waits for it, at most 120 s

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits[self.path] = hits.get(self.path, 0) + 1
                if self.path == hold:
                    released.wait(120)
                time.sleep(delay_s)
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.slow
async def test_crash_sigkill_mid_run_completes_once_on_another_worker(nats_url, database_url, run_service) -> None:
    slow = SlowServer(delay_s=1.0, hold="/h3")
    tools_port = infra.free_port()
    run_service(
        "tools",
        env={
            "LOOM_TOOLS_GRPC_PORT": str(tools_port),
            "LOOM_TOOLS_HTTP_ALLOWLIST": "127.0.0.1",
            "LOOM_TOOLS_SANDBOX_ALLOW_DEGRADED": "true",
        },
    )
    env = {"LOOM_TOOLS_ADDR": f"127.0.0.1:{tools_port}"}  # the default ack wait (4 s)
    steps = [f"h{i}" for i in range(1, 7)]
    g = {
        "nodes": [
            START,
            *[node(s, "http-request", url=f"http://127.0.0.1:{slow.port}/{s}") for s in steps],
            node("end", "end", outputs=[{"variable": "last", "value_selector": ["h6", "status_code"]}]),
        ],
        "edges": chain("start", *steps, "end"),
    }
    first = run_service("orchestrator", env=env)
    async with BusClient(nats_url) as client:
        run_id = await client.request(g)
        deadline = time.monotonic() + 60
        while slow.hits.get("/h3", 0) == 0:  # h1 and h2 are done, h3 is in flight (held)
            assert time.monotonic() < deadline, first.log()
            await asyncio.sleep(0.05)
        run_service("orchestrator", env=env)  # the worker that takes over, ready before the kill
        first.kill()  # SIGKILL: no drain, no nack
        killed_at = time.monotonic()
        slow.released.set()
        while slow.hits.get("/h3", 0) < 2:  # the other worker restarted the node in flight
            assert time.monotonic() < killed_at + 60, "no worker took the run over"
            await asyncio.sleep(0.05)
        print(f"takeover_s_after_sigkill={time.monotonic() - killed_at:.2f}")
        assert await _wait_status(database_url, run_id, ("succeeded", "failed"), timeout_s=90) == "succeeded"
        events = await client.all_events(run_id)
    assert slow.hits["/h1"] == 1 and slow.hits["/h2"] == 1  # finished nodes were not re-run
    assert slow.hits["/h3"] == 2  # the node in flight was restarted, once
    assert all(slow.hits[f"/{s}"] == 1 for s in steps[3:])
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs)), "seq must grow strictly across the two workers"
    assert [e.event for e in events].count("workflow_finished") == 1
    assert events[-1].data.status == "succeeded" and events[-1].data.outputs == {"last": 200}
    rows = {
        r["key"]: r
        for r in await _row(
            database_url, "SELECT key, starts, status FROM orchestrator.node_executions WHERE run_id = $1", run_id
        )
    }
    assert rows["h1"]["starts"] == 1 and rows["h2"]["starts"] == 1 and rows["h3"]["starts"] == 2
    run = (await _row(database_url, "SELECT deliveries, status FROM orchestrator.runs WHERE id = $1", run_id))[0]
    assert run["deliveries"] == 2 and run["status"] == "succeeded"
