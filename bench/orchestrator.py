"""Orchestrator benchmark: engine overhead per node, and runs/s with 2 worker processes.

1. Engine overhead, in process (in-memory journal and event sink): a 500-node chain of
   template-transform nodes and a wide fan-out (start -> N templates -> one join). The
   baseline, in the same run, renders the same templates directly in a loop; overhead per
   node = (engine time - baseline time) / nodes.
2. The same chain on the durable path: the Postgres journal (one write per node) and the
   ordered JetStream event publisher (2 events per node), real NATS and Postgres.
3. Runs per second: 2 `loom-orchestrator` processes on one work queue; N small runs
   (start -> template -> end) are published at once; the clock stops when all are recorded
   finished in Postgres.
4. Time to first token through the orchestrator: a chatflow (start -> llm -> answer) on one
   `loom-orchestrator` process whose inference is a fake gRPC servicer in this process that
   streams its first token at once. Measured: `runs.requested` published -> the first
   `message` event received on `run.<id>.events`, at 1 and 8 concurrent runs; the baseline,
   in the same run, is a direct Generate call on the fake (request -> first chunk).
5. Recovery after SIGKILL: a worker running a chatflow's llm call is killed while a second
   worker is ready; `recovery_s_after_sigkill` is the median time from the kill to the run's
   `message_end` (the second worker resumed it and restarted the llm node). Target <= 5 s.

    .venv/bin/python bench/orchestrator.py --quick    # < 1 minute
    .venv/bin/python bench/orchestrator.py
    .venv/bin/python bench/orchestrator.py --ttft-only  # part 4 alone
    .venv/bin/python bench/orchestrator.py --recovery-only  # part 5 alone

The last line printed is one JSON object with every figure (`ms_per_node` is the in-process
engine overhead per node of the chain; `runs_per_s` is with 2 workers; `ttft_overhead_ms_c1`
and `_c8` are the orchestrator's median time to first token minus the direct call's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from loom.inference.v1 import inference_pb2 as ipb
from loom.inference.v1 import inference_pb2_grpc
from loom_common import db, messaging
from loom_common.devstack import infra
from loom_common.migrations import apply_migrations
from loom_common.runtime import GRPC_EXCLUSIVE_PORT
from loom_common.testing import service_channel  # signs each call (service_auth)
from loom_orchestrator.engine.context import RunLimits
from loom_orchestrator.nodes.template_transform import _compile

# The orchestrator's test kit lives beside its tests, not in its package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services" / "orchestrator" / "tests"))
from orchestrator_testkit import BusClient, Harness, chain, edge, node, tpl

TEMPLATE = "{{ x }}+1"
TOKENS, TOKEN_GAP_S = 20, 0.01  # the fake model: ~100 tokens/s


def chain_graph(n: int) -> dict:
    ids = [f"t{i}" for i in range(n)]
    nodes = [node("start", "start")]
    prev = "start"
    for i in ids:
        nodes.append(tpl(i, TEMPLATE, x=[prev, "output"] if prev != "start" else ["sys", "dialogue_count"]))
        prev = i
    nodes.append(node("end", "end", outputs=[{"variable": "r", "value_selector": [prev, "output"]}]))
    return {"nodes": nodes, "edges": chain("start", *ids, "end")}


def fanout_graph(n: int) -> dict:
    ids = [f"f{i}" for i in range(n)]
    nodes = [node("start", "start"), *[tpl(i, TEMPLATE, x=["sys", "dialogue_count"]) for i in ids],
             node("join", "variable-aggregator", variables=[[i, "output"] for i in ids]),
             node("end", "end", outputs=[{"variable": "r", "value_selector": ["join", "output"]}])]
    return {"nodes": nodes, "edges": [*[edge("start", i) for i in ids], *[edge(i, "join") for i in ids],
                                      edge("join", "end")]}


def baseline_s(n: int) -> float:
    template = _compile(TEMPLATE)
    t0 = time.perf_counter()
    x = "1"
    for _ in range(n):
        x = template.render(x=x)
    return time.perf_counter() - t0


async def engine_overhead(graph: dict, nodes: int, repeats: int, harness_factory) -> tuple[float, float]:
    """(median ms per node for the engine, median ms per node for the baseline)."""
    limits = RunLimits(max_steps=10 * nodes + 10, max_parallel=64)
    engine, base = [], []
    for _ in range(repeats):
        h = harness_factory()
        t0 = time.perf_counter()
        out = await h.run(graph, limits=limits)
        engine.append(time.perf_counter() - t0)
        assert out.status == "succeeded", out.error
        base.append(baseline_s(nodes))
    return statistics.median(engine) * 1000 / nodes, statistics.median(base) * 1000 / nodes


async def durable_chain(nats_url: str, database_url: str, n: int) -> float:
    from faststream.nats import NatsBroker

    from loom_common.events import RunRequested
    from loom_common.ids import new_id
    from loom_orchestrator.engine.context import RunContext, Services
    from loom_orchestrator.events import RunEventPublisher
    from loom_orchestrator.store import PgJournal, PgRunStore
    from loom_orchestrator.workflow import execute_run

    pool = await db.create_pool(database_url, schema="orchestrator", min_size=2, max_size=4)
    broker = NatsBroker(nats_url)
    await broker.connect()
    await messaging.ensure_streams(broker)
    graph = chain_graph(n)
    try:
        times = []
        for _ in range(2):
            run_id = new_id()
            req = RunRequested(tenant_id="bench", run_id=run_id, app_id="bench", graph=graph)
            await PgRunStore(pool).record_requested(req, None)
            ctx = RunContext(run_id=run_id, tenant_id="bench", app_id="bench", limits=RunLimits(max_steps=10 * n))
            t0 = time.perf_counter()
            events = RunEventPublisher(broker, run_id, "bench")
            out = await execute_run(req, ctx, Services(), PgJournal(pool, "bench"), events)
            await events.flush()
            times.append(time.perf_counter() - t0)
            assert out.status == "succeeded", out.error
        return min(times) * 1000 / n
    finally:
        await broker.stop()
        await pool.close()


async def runs_per_second(nats_url: str, database_url: str, runs: int, workdir: Path) -> float:
    env = {**os.environ, "LOOM_NATS_URL": nats_url, "LOOM_DATABASE_URL": database_url, "LOOM_HOME": str(workdir),
           "LOOM_LOG_LEVEL": "WARNING", "LOOM_ORCHESTRATOR_MAX_CONCURRENT_RUNS": "16"}
    exe = str(Path(sys.executable).parent / "loom-orchestrator")
    procs = []
    for i in range(2):
        port = infra.free_port()
        log = open(workdir / f"worker{i}.log", "ab")  # noqa: SIM115
        procs.append(subprocess.Popen([exe], env={**env, "LOOM_ORCHESTRATOR_HTTP_PORT": str(port)}, stdout=log,
                                      stderr=subprocess.STDOUT))
        import httpx

        infra.wait_until(lambda p=port: httpx.get(f"http://127.0.0.1:{p}/readyz", timeout=2).status_code == 200,
                         60, "orchestrator")
    graph = {"nodes": [node("start", "start"), tpl("t", "hello {{ x }}", x=["sys", "query"]),
                       node("end", "end", outputs=[{"variable": "r", "value_selector": ["t", "output"]}])],
             "edges": chain("start", "t", "end")}
    conn = await asyncpg.connect(database_url)
    try:
        async with BusClient(nats_url) as client:
            t0 = time.perf_counter()
            ids = await asyncio.gather(*(client.request(graph, app_id="bench-rps", query=str(i)) for i in range(runs)))
            while True:
                done = await conn.fetchval("SELECT count(*) FROM orchestrator.runs WHERE id = ANY($1::text[]) "
                                           "AND status = 'succeeded'", list(ids))
                if done == runs:
                    break
                await asyncio.sleep(0.05)
            return runs / (time.perf_counter() - t0)
    finally:
        await conn.close()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


class FastInference(inference_pb2_grpc.InferenceServicer):
    """Streams TOKENS tokens, the first at once, then one every TOKEN_GAP_S."""

    async def Generate(self, request, context):
        for i in range(TOKENS):
            yield ipb.GenerateChunk(text=f"t{i} ")
            await asyncio.sleep(TOKEN_GAP_S)
        yield ipb.GenerateChunk(finish_reason=ipb.FINISH_REASON_STOP, model="fake",
                                usage=ipb.Usage(prompt_tokens=3, completion_tokens=TOKENS))


async def _first_message(nc, broker, graph: dict) -> float:
    """Seconds from publishing runs.requested to the first `message` event of the run."""
    from loom_common import bus
    from loom_common.events import RunRequested
    from loom_common.ids import new_id

    run_id, loop = new_id(), asyncio.get_running_loop()
    first, end = loop.create_future(), loop.create_future()

    async def on_event(msg) -> None:
        if b'"data":{"type":"message"' in msg.data and not first.done():
            first.set_result(time.perf_counter())
        if b'"data":{"type":"message_end"' in msg.data and not end.done():
            end.set_result(None)

    sub = await nc.subscribe(bus.run_events(run_id), cb=on_event)  # core NATS: sees JetStream publishes
    try:
        t0 = time.perf_counter()
        await messaging.publish(broker, bus.RUNS_REQUESTED, RunRequested(
            tenant_id="bench", run_id=run_id, app_id="bench-ttft", app_mode="chatflow", graph=graph, query="hi",
            conversation_id=new_id()), stream=bus.RUNS.name)
        took = await asyncio.wait_for(first, 30) - t0
        await asyncio.wait_for(end, 30)
        return took
    finally:
        await sub.unsubscribe()


async def _direct(stub) -> float:
    t0 = time.perf_counter()
    call = stub.Generate(ipb.GenerateRequest(model="fake", messages=[ipb.ChatMessage(role="user", content="hi")]),
                         timeout=30)
    async for _ in call:
        took = time.perf_counter() - t0
        break
    call.cancel()
    return took


async def ttft_overhead(nats_url: str, database_url: str, workdir: Path, rounds: int) -> dict:
    import grpc
    import httpx
    from faststream.nats import NatsBroker

    server = grpc.aio.server(options=GRPC_EXCLUSIVE_PORT)
    inference_pb2_grpc.add_InferenceServicer_to_server(FastInference(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    http_port = infra.free_port()
    env = {**os.environ, "LOOM_NATS_URL": nats_url, "LOOM_DATABASE_URL": database_url, "LOOM_HOME": str(workdir),
           "LOOM_LOG_LEVEL": "WARNING", "LOOM_INFERENCE_ADDR": f"127.0.0.1:{port}",
           "LOOM_ORCHESTRATOR_HTTP_PORT": str(http_port)}
    log = open(workdir / "ttft-worker.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([str(Path(sys.executable).parent / "loom-orchestrator")], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    broker = NatsBroker(nats_url)
    graph = {"nodes": [node("start", "start"),
                       node("llm", "llm", model={"name": "fake"}, prompt_template=[{"role": "user", "text": "hi"}]),
                       node("ans", "answer", answer="{{#llm.text#}}")],
             "edges": chain("start", "llm", "ans")}
    try:
        infra.wait_until(lambda: httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=2).status_code == 200,
                         60, "orchestrator")
        await broker.connect()
        nc = broker.connection
        channel = service_channel(f"127.0.0.1:{port}")
        stub = inference_pb2_grpc.InferenceStub(channel)
        for c in (1, 8):  # warm-up: channels, pooled connections, prepared statements
            await asyncio.gather(*(_first_message(nc, broker, graph) for _ in range(c)))
            await asyncio.gather(*(_direct(stub) for _ in range(c)))
        out: dict = {}
        for c in (1, 8):
            via, direct = [], []
            for _ in range(rounds):
                via += await asyncio.gather(*(_first_message(nc, broker, graph) for _ in range(c)))
                direct += await asyncio.gather(*(_direct(stub) for _ in range(c)))
            out[f"ttft_ms_c{c}"] = round(statistics.median(via) * 1000, 2)
            out[f"direct_ttft_ms_c{c}"] = round(statistics.median(direct) * 1000, 2)
            out[f"ttft_overhead_ms_c{c}"] = round(out[f"ttft_ms_c{c}"] - out[f"direct_ttft_ms_c{c}"], 2)
        await channel.close()
        return out
    finally:
        await broker.stop()
        proc.terminate()
        proc.wait(30)
        await server.stop(0)


class HangingFirstInference(inference_pb2_grpc.InferenceServicer):
    """The first Generate of each round streams one token and then hangs (the worker running it
    gets killed); any later call streams TOKENS tokens at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []  # perf_counter of each call
        self.called = asyncio.Event()

    async def Generate(self, request, context):
        self.calls.append(time.perf_counter())
        self.called.set()
        if len(self.calls) % 2 == 1:
            yield ipb.GenerateChunk(text="first ")
            await asyncio.sleep(3600)
        for i in range(TOKENS):
            yield ipb.GenerateChunk(text=f"t{i} ")
        yield ipb.GenerateChunk(finish_reason=ipb.FINISH_REASON_STOP, model="fake",
                                usage=ipb.Usage(prompt_tokens=3, completion_tokens=TOKENS))


async def recovery_after_sigkill(nats_url: str, database_url: str, workdir: Path, rounds: int) -> dict:
    """Per round: one `loom-orchestrator` (default settings: 4 s ack wait) takes a chatflow run
    whose llm call hangs after its first token; a second process is started and ready; the
    first is SIGKILLed. Clock: kill -> the run's `message_end` event (recovery), and kill -> the
    second Generate call (takeover: the new worker restarted the node in flight)."""
    import grpc
    import httpx
    from faststream.nats import NatsBroker

    from loom_common import bus
    from loom_common.events import RunRequested
    from loom_common.ids import new_id

    fake = HangingFirstInference()
    server = grpc.aio.server(options=GRPC_EXCLUSIVE_PORT)
    inference_pb2_grpc.add_InferenceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    env = {**os.environ, "LOOM_NATS_URL": nats_url, "LOOM_DATABASE_URL": database_url, "LOOM_HOME": str(workdir),
           "LOOM_LOG_LEVEL": "WARNING", "LOOM_INFERENCE_ADDR": f"127.0.0.1:{port}"}
    exe = str(Path(sys.executable).parent / "loom-orchestrator")

    def start(i: int) -> subprocess.Popen:
        http_port = infra.free_port()
        log = open(workdir / f"recovery-worker{i}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen([exe], env={**env, "LOOM_ORCHESTRATOR_HTTP_PORT": str(http_port)}, stdout=log,
                                stderr=subprocess.STDOUT)
        infra.wait_until(lambda: httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=2).status_code == 200,
                         60, "orchestrator")
        return proc

    graph = {"nodes": [node("start", "start"),
                       node("llm", "llm", model={"name": "fake"}, prompt_template=[{"role": "user", "text": "hi"}]),
                       node("ans", "answer", answer="{{#llm.text#}}")],
             "edges": chain("start", "llm", "ans")}
    broker = NatsBroker(nats_url)
    procs = [await asyncio.to_thread(start, 0)]
    recovery, takeover = [], []
    try:
        await broker.connect()
        await messaging.ensure_streams(broker)
        loop = asyncio.get_running_loop()
        for r in range(rounds):
            run_id, end = new_id(), loop.create_future()

            async def on_event(msg, end=end) -> None:
                if b'"data":{"type":"message_end"' in msg.data and not end.done():
                    end.set_result(time.perf_counter())

            sub = await broker.connection.subscribe(bus.run_events(run_id), cb=on_event)
            calls = len(fake.calls)
            fake.called.clear()
            await messaging.publish(broker, bus.RUNS_REQUESTED, RunRequested(
                tenant_id="bench", run_id=run_id, app_id="bench-recovery", app_mode="chatflow", graph=graph,
                query="hi", conversation_id=new_id()), stream=bus.RUNS.name)
            await asyncio.wait_for(fake.called.wait(), 60)  # the llm node is in flight on the only worker
            procs.append(await asyncio.to_thread(start, r + 1))  # the one that takes over
            victim = procs[-2]
            victim.kill()
            killed = time.perf_counter()
            victim.wait()
            finished = await asyncio.wait_for(end, 120)
            recovery.append(finished - killed)
            takeover.append(fake.calls[calls + 1] - killed)
            await sub.unsubscribe()
    finally:
        await broker.stop()
        for p in procs:
            infra.stop_process(p)
        await server.stop(0)
    return {"recovery_s_after_sigkill": round(statistics.median(recovery), 2),
            "recovery_s_after_sigkill_max": round(max(recovery), 2),
            "takeover_s_after_sigkill": round(statistics.median(takeover), 2), "recovery_rounds": rounds}


def recovery_rows(t: dict) -> list[tuple[str, str, str]]:
    return [("recovery after SIGKILL of the worker mid-llm (kill -> message_end)",
             f"{t['recovery_s_after_sigkill']:.2f} s",
             f"median of {t['recovery_rounds']}, max {t['recovery_s_after_sigkill_max']:.2f} s; takeover "
             f"(kill -> node restarted) {t['takeover_s_after_sigkill']:.2f} s")]


async def with_infra(fn, *args):
    workdir = Path(tempfile.mkdtemp(prefix="loom-bench-orch-"))
    nats = infra.EmbeddedNats(workdir / "nats").start()
    pg = infra.EmbeddedPostgres(workdir / "pg").start()
    try:
        database_url = pg.url("loom_bench")
        await db.ensure_database(database_url)
        await apply_migrations(database_url, "orchestrator", "loom_orchestrator.migrations")
        return await fn(nats.url, database_url, workdir, *args)
    finally:
        nats.stop()
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def ttft_rows(t: dict) -> list[tuple[str, str, str]]:
    return [(f"time to first token via orchestrator, c{c}", f"+{t[f'ttft_overhead_ms_c{c}']:.1f} ms",
             f"median {t[f'ttft_ms_c{c}']:.1f} ms vs direct Generate {t[f'direct_ttft_ms_c{c}']:.1f} ms")
            for c in (1, 8) if f"ttft_ms_c{c}" in t]


def table(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'figure':>14}  note")
    for name, fig, note in rows:
        print(f"{name.ljust(width)}  {fig:>14}  {note}")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--ttft-only", action="store_true", help="only the time-to-first-token figures")
    ap.add_argument("--recovery-only", action="store_true", help="only the recovery-after-SIGKILL figures")
    args = ap.parse_args()
    rounds = 5 if args.quick else 15
    if args.recovery_only:
        t = await with_infra(recovery_after_sigkill, 3 if args.quick else 5)
        table(recovery_rows(t))
        print(json.dumps(t))
        return
    if args.ttft_only:
        t = await with_infra(ttft_overhead, rounds)
        table(ttft_rows(t))
        print(json.dumps(t))
        return
    chain_n, fan_n = 500, (200 if args.quick else 500)
    repeats = 3 if args.quick else 7
    runs = 100 if args.quick else 400

    chain_ms, chain_base = await engine_overhead(chain_graph(chain_n), chain_n + 2, repeats, Harness)
    fan_ms, fan_base = await engine_overhead(fanout_graph(fan_n), fan_n + 3, repeats, Harness)

    async def durable(nats_url, database_url, workdir):
        return (await durable_chain(nats_url, database_url, chain_n),
                await runs_per_second(nats_url, database_url, runs, workdir),
                await ttft_overhead(nats_url, database_url, workdir, rounds),
                await recovery_after_sigkill(nats_url, database_url, workdir, 3 if args.quick else 5))

    durable_ms, rps, ttft, recovery = await with_infra(durable)

    rows = [
        ("chain of 500 templates, engine (in-memory ports)", f"{chain_ms:.3f} ms/node",
         f"overhead {chain_ms - chain_base:.3f} ms/node over direct rendering ({chain_base:.3f})"),
        (f"fan-out of {fan_n} templates, engine", f"{fan_ms:.3f} ms/node",
         f"overhead {fan_ms - fan_base:.3f} ms/node over direct rendering ({fan_base:.3f})"),
        ("chain of 500, durable (Postgres journal + JetStream events)", f"{durable_ms:.3f} ms/node", ""),
        (f"runs/s, 2 worker processes, {runs} runs of 3 nodes", f"{rps:.1f} runs/s", ""),
        *ttft_rows(ttft),
        *recovery_rows(recovery),
    ]
    table(rows)
    print(json.dumps({"ms_per_node": round(chain_ms - chain_base, 4), "ms_per_node_engine_total": round(chain_ms, 4),
                      "ms_per_node_fanout": round(fan_ms - fan_base, 4), "ms_per_node_durable": round(durable_ms, 4),
                      "runs_per_s": round(rps, 2), "workers": 2, "runs": runs, **ttft, **recovery,
                      "quick": args.quick}))


if __name__ == "__main__":
    asyncio.run(main())
