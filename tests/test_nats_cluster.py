"""Loom on a 3-node NATS JetStream cluster (loopback, three nats-server processes, every stream
with 3 replicas: LOOM_JETSTREAM_REPLICAS=3, LOOM_NATS_URL listing the three), with two gateway
and three orchestrator processes: one NATS node (the leader of the run events' stream) and one
orchestrator are SIGKILLed while every run is streaming, and every run still finishes exactly
once (docs/reliability.md).

The model is inference's fake route (the real engine, no model), its tokens paced so that the
runs are in flight at the kill; the orchestrator killed is the one running the most runs then
(its /metrics), which JetStream redelivers to the others. Counted in Postgres and JetStream: 12
runs succeeded, one answer each, the run's recorded answer of the full length (a node restarted
once does not double its text), each run's events numbered 1..n once with one message_end."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import httpx
import nats
import pytest

from loom_common import bus
from loom_common.db import _with_database
from loom_common.devstack import infra
from loom_common.devstack.nats_cluster import NatsCluster
from loom_common.events import RunEvent, read_run_events
from loom_common.testing import ServiceProcess, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

sys.path.insert(0, str(Path(__file__).parents[1] / "services" / "gateway" / "tests"))
from gateway_stack import app_with_key, start_stack  # noqa: E402

RUNS, SLOTS, TOKENS = 12, 4, 60
STALL_S = 300  # a client gives up on a run that sent nothing new for this long
ORCH_COLUMNS = "id, status, deliveries, answer, error"
# On a cluster the ack wait must outlast a leader election (docs/operations.md, NATS cluster):
# with 4 s, a run the killed worker held could be taken over while the RUNS consumer was still
# electing, lose that lease too, and fail as "in flight when its worker died 2 times".
ACK_WAIT_S = "10"
GRAPH = {"nodes": [
    {"id": "start", "data": {"type": "start"}},
    {"id": "llm", "data": {"type": "llm", "model": {"name": "fake", "completion_params": {"max_tokens": TOKENS}},
                           "prompt_template": [{"role": "user", "text": "{{#sys.query#}}"}]}},
    {"id": "ans", "data": {"type": "answer", "answer": "{{#llm.text#}}"}}],
    "edges": [{"source": "start", "target": "llm"}, {"source": "llm", "target": "ans"}]}


def _another(proc: ServiceProcess, name: str, home: Path) -> ServiceProcess:
    """One more process of `proc`'s service, on its own ports, with the same settings."""
    prefix = f"LOOM_{proc.name.upper()}_"
    http, grpc, admin = infra.free_port(), infra.free_port(), infra.free_port()
    env = {**proc.env, f"{prefix}HTTP_PORT": str(http), f"{prefix}GRPC_PORT": str(grpc)}
    if proc.name == "gateway":
        env[f"{prefix}ADMIN_PORT"] = str(admin)
    return ServiceProcess(proc.name, env, http, home / f"{name}.log", admin if proc.name == "gateway" else None)


async def _stream(gateway: str, key: str, n: int, first: asyncio.Event, started: Counter) -> dict:
    """A streaming chat, resumed with Last-Event-ID whenever its stream breaks off before the end."""
    seen: list[dict] = []
    ids: list[int] = []  # the SSE ids (event seqs) as the client got them
    last, task_id = 0, None
    # Resumed as long as it makes progress: a hang guard only (an election under load can outlast
    # many quick tries), reset by every new event.
    stalled_at = time.monotonic() + STALL_S
    async with httpx.AsyncClient(base_url=gateway, timeout=120) as client:
        while time.monotonic() < stalled_at:
            if task_id is None:
                req = client.stream("POST", "/v1/chat-messages", headers={"Authorization": f"Bearer {key}"},
                                    json={"inputs": {}, "query": f"tell me {n}", "user": f"u{n}",
                                          "response_mode": "streaming"})
            else:
                req = client.stream("GET", f"/v1/runs/{task_id}/events",
                                    headers={"Authorization": f"Bearer {key}", "Last-Event-ID": str(last)})
            try:
                async with req as r:
                    r.raise_for_status()
                    async for line in r.aiter_lines():
                        if line.startswith("id: "):
                            last = int(line[4:])
                            ids.append(last)
                            stalled_at = time.monotonic() + STALL_S
                        elif line.startswith("data: "):
                            ev = json.loads(line[6:])
                            seen.append(ev)
                            task_id = task_id or ev.get("task_id")
                            if ev["event"] == "message" and not started[n]:
                                started[n] = 1
                                if sum(started.values()) == RUNS:
                                    first.set()
                            if ev["event"] == "message_end":
                                return {"task_id": task_id, "events": seen, "ids": ids}
            except (httpx.HTTPError, json.JSONDecodeError):
                pass  # the gateway lost the bus for a moment: resume from the last seq
            await asyncio.sleep(1.0)
    raise AssertionError(f"chat {n} never ended: {[e['event'] for e in seen]}")


def _active_runs(proc: ServiceProcess) -> float:
    metrics = httpx.get(f"{proc.admin_url}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in metrics.splitlines()
               if line.startswith("loom_orchestrator_runs_active"))


async def _leader(url: str, stream: str) -> int:
    nc = await nats.connect(url.split(","))
    try:
        info = await nc.jetstream().stream_info(stream)
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2, info.cluster  # 3 copies
        return int(info.cluster.leader.rsplit("-", 1)[1])
    finally:
        await nc.close()


async def _stored_events(url: str, run_id: str) -> list[RunEvent]:
    nc = await nats.connect(url.split(","))
    try:
        sub = await nc.jetstream().subscribe(bus.run_events(run_id), ordered_consumer=True)
        out = []
        try:
            while True:
                out += read_run_events((await sub.next_msg(timeout=2.0)).data)  # one event or a batch
        except nats.errors.TimeoutError:
            pass
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


def test_a_nats_node_and_an_orchestrator_killed_mid_run_on_a_3_node_cluster(database_url, tmp_path) -> None:
    cluster = NatsCluster(tmp_path / "nats", size=3).start()
    db = _with_database(database_url, f"cluster_{uuid.uuid4().hex[:10]}")
    config = tmp_path / "inference.toml"
    config.write_text(f"[performance]\nmax_parallel = {RUNS}\nmax_waiting = {RUNS}\n\n"
                      '[[models]]\nname = "fake"\nbackend = "fake"\nparameters = { step_delay_s = 0.1 }\n')
    home = tmp_path / "home"
    extra: list[ServiceProcess] = []
    stack = None
    try:
        stack = start_stack(cluster.url, db, home,
                            gateway_env={"LOOM_GATEWAY_KEY_RPM": "0", "LOOM_GATEWAY_WORKSPACE_RPM": "0"},
                            inference_env={"LOOM_INFERENCE_CONFIG": str(config),
                                           "LOOM_INFERENCE_LOAD_MODELS_AT_START": "false"},
                            service_env={"LOOM_JETSTREAM_REPLICAS": "3",
                                         "LOOM_ORCHESTRATOR_MAX_CONCURRENT_RUNS": str(SLOTS),
                                         "LOOM_ORCHESTRATOR_RUNS_ACK_WAIT_S": ACK_WAIT_S})
        by_name = {p.name: p for p in stack.procs}
        extra = [_another(by_name["gateway"], "gateway-2", home),
                 _another(by_name["orchestrator"], "orchestrator-2", home),
                 _another(by_name["orchestrator"], "orchestrator-3", home)]
        for p in extra:
            p.start(120)
        gateways = [stack.gateway_url, extra[0].base_url]
        _, key = app_with_key(stack, "chatflow", GRAPH, name="cluster")
        orchestrators = [by_name["orchestrator"], *extra[1:]]
        victim: list[ServiceProcess] = []

        async def scenario() -> tuple[list[dict], float]:
            first, started = asyncio.Event(), Counter()
            chats = [asyncio.create_task(_stream(gateways[n % 2], key, n, first, started)) for n in range(RUNS)]
            await asyncio.wait_for(first.wait(), 300)  # every run has streamed text: all are in flight
            leader = await _leader(cluster.user_url(), bus.RUN_EVENTS.name)  # the node a stream must lose
            active = await asyncio.gather(*(asyncio.to_thread(_active_runs, o) for o in orchestrators))
            busiest = orchestrators[active.index(max(active))]  # the worker to kill holds runs now
            victim.append(busiest)
            t0 = time.monotonic()
            cluster.kill(leader)
            busiest.kill()
            results = await asyncio.gather(*chats)
            return results, time.monotonic() - t0

        results, recovery_s = asyncio.run(scenario())

        async def check() -> None:
            conn = await asyncpg.connect(db)
            try:
                runs = [r["status"] for r in await eventually(lambda: _all_finished(conn, "gateway", "status"),
                                                              "every run recorded finished in the gateway")]
                # The worker records its outcome once its last events are acked (after the gateway's).
                orch = await eventually(lambda: _all_finished(conn, "orchestrator", ORCH_COLUMNS),
                                        "every run recorded finished by the orchestrators")
                answers = await conn.fetch("SELECT answer FROM gateway.messages")
            finally:
                await conn.close()
            print(f"recovery_s={recovery_s:.2f} (kill -> every stream ended), runs {Counter(runs)}, "
                  f"redelivered {sum(1 for r in orch if r['deliveries'] > 1)}")
            print(f"orchestrator records {Counter((r['status'], r['deliveries']) for r in orch)}",
                  *[f"{r['id']}: {r['error']}" for r in orch if r["error"]])
            for log in sorted(home.glob("orchestrator*.log")) + sorted(home.glob("gateway*.log")):
                said = Counter(json.loads(ln).get("event") for ln in log.read_text(errors="replace").splitlines()
                               if '"level": "error"' in ln or '"level": "warning"' in ln)
                print(f"{log.name}: {dict(said)}")  # what the workers and gateways warned of
            assert Counter(runs) == {"succeeded": RUNS}
            assert len(orch) == RUNS and all(r["status"] == "succeeded" for r in orch), orch
            assert sum(1 for r in orch if r["deliveries"] > 1) >= 1, "the killed orchestrator held no run"
            # One answer per run; the run's own record holds the text of its last model call, whole.
            assert len(answers) == RUNS and all(a["answer"] for a in answers), answers
            assert all(len(r["answer"].split()) == TOKENS for r in orch), [r["answer"] for r in orch]
            for result in results:
                names = [e["event"] for e in result["events"]]
                stored = await _stored_events(cluster.user_url(), result["task_id"])
                # Each seq stored once; an event whose ack was lost with the node may be stored after
                # later ones (events.py: readers order by seq)...
                assert sorted(e.seq for e in stored) == list(range(1, len(stored) + 1)), [e.seq for e in stored]
                # ...and the client got each once, in order.
                assert result["ids"] == list(range(1, len(stored) + 1)), result["ids"]
                assert [e.event for e in stored].count("message_end") == 1, names
                assert [e.event for e in stored].count("workflow_finished") == 1, names

        asyncio.run(check())
        assert all(p.proc.poll() is None for p in [*stack.procs, *extra] if p not in victim)
    finally:
        for p in extra:
            p.stop(15)
        if stack is not None:
            stack.stop()
        cluster.stop()


async def _all_finished(conn: asyncpg.Connection, schema: str, columns: str) -> list | None:
    rows = await conn.fetch(f"SELECT {columns} FROM {schema}.runs")
    return rows if len(rows) == RUNS and all(r["status"] != "running" for r in rows) else None
