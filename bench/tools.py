"""Tools benchmark: what validation, limits, isolation and audit cost per call.

The real `loom-tools` process runs against an embedded Postgres and NATS (state under
.loom/bench-tools, rebuilt each run). Each row invokes one tool over gRPC `Invoke`
sequentially and compares it with a baseline measured in the same run on the same machine:

    math.eval        vs  ListTools round trip     (gRPC + executor + audit insert overhead)
    pg.query         vs  asyncpg fetch on an open connection   (guard + connect + RO txn)
    lite.query       vs  sqlite3 query in process
    http.request     vs  httpx GET on a loopback server         (guard + pinned client)
    code.python      vs  bare `python3 -c` process spawn         (bubblewrap + uid + rlimits)

plus code.python throughput at 4 concurrent calls.

    .venv/bin/python bench/tools.py --quick     # ~30 s
    .venv/bin/python bench/tools.py             # more calls

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import numpy as np
import uvicorn
from fastapi import FastAPI

from loom.tools.v1 import tools_pb2 as pb
from loom.tools.v1 import tools_pb2_grpc
from loom_common import db
from loom_common.devstack import infra
from loom_common.testing import service_channel  # signs each call (service_auth)

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".loom" / "bench-tools"
TENANT = "bench"


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


async def timed(n: int, fn) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def loopback_server() -> tuple[uvicorn.Server, int]:
    app = FastAPI()

    @app.get("/ping")
    async def ping():
        return {"pong": True}

    port = infra.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    infra.wait_until(lambda: server.started, 15, "loopback server")
    return server, port


def start_tools(env: dict[str, str], log: Path) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "loom-tools"
    proc = subprocess.Popen([str(exe)], env={**os.environ, **env}, stdout=open(log, "ab"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)
    port = env["LOOM_TOOLS_HTTP_PORT"]
    infra.wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200,
                     60, "loom-tools")
    return proc


async def run(n: int) -> dict:
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True)
    pg = infra.EmbeddedPostgres(STATE / "pg").start()
    nats = infra.EmbeddedNats(STATE / "nats").start()
    server, http_port = loopback_server()
    tools = None
    try:
        url = pg.url()
        await db.ensure_database(url)
        conn = await asyncpg.connect(url)
        await conn.execute("CREATE TABLE IF NOT EXISTS public.items AS SELECT g AS id, 'item-' || g AS name "
                           "FROM generate_series(1, 1000) g")
        # The SQL tool refuses superusers: it reads as a role that may only read the table.
        await conn.execute("DROP ROLE IF EXISTS bench_reader; CREATE ROLE bench_reader LOGIN PASSWORD 'bench';"
                           " GRANT SELECT ON public.items TO bench_reader")
        parts = urlsplit(url)
        reader_url = urlunsplit(parts._replace(netloc="bench_reader:bench@" + parts.netloc.rpartition("@")[2]))
        lite_dir = STATE / "sqlite"
        lite_dir.mkdir()
        lite = lite_dir / "items.db"
        with sqlite3.connect(lite) as c:
            c.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
            c.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item-{i}") for i in range(1000)])

        grpc_port = infra.free_port()
        tools = start_tools({"LOOM_DATABASE_URL": url, "LOOM_NATS_URL": nats.url, "LOOM_HOME": str(STATE / "home"),
                             "LOOM_TOOLS_HTTP_PORT": str(infra.free_port()), "LOOM_TOOLS_GRPC_PORT": str(grpc_port),
                             "LOOM_TOOLS_ALLOW_PRIVATE_TARGETS": "127.0.0.1", "LOOM_TOOLS_SQLITE_ROOTS": str(lite_dir),
                             "LOOM_LOG_LEVEL": "WARNING"}, STATE / "tools.log")
        figures: dict[str, float] = {}
        rows = []
        async with service_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = tools_pb2_grpc.ToolsStub(channel)
            await stub.AddConnection(pb.AddConnectionRequest(tenant_id=TENANT, name="pg", driver="postgresql",
                                                             dsn=reader_url), timeout=10)
            await stub.AddConnection(pb.AddConnectionRequest(tenant_id=TENANT, name="lite", driver="sqlite",
                                                             path=str(lite)), timeout=10)

            def invoker(tool: str, args: dict):
                req = pb.InvokeRequest(tenant_id=TENANT, tool=tool, arguments_json=json.dumps(args), run_id="bench")

                async def call():
                    resp = await stub.Invoke(req, timeout=30)
                    assert resp.ok, (tool, resp.error_code, resp.error_message)
                return call

            async def list_tools():
                await stub.ListTools(pb.ListToolsRequest(tenant_id=TENANT), timeout=10)

            async def pg_direct():
                await conn.fetch("SELECT id, name FROM items WHERE id < 50")

            async def lite_direct():
                with sqlite3.connect(lite) as c:
                    c.execute("SELECT id, name FROM items WHERE id < 50").fetchall()

            client = httpx.AsyncClient()

            async def http_direct():
                (await client.get(f"http://127.0.0.1:{http_port}/ping")).raise_for_status()

            async def spawn_direct():
                p = await asyncio.create_subprocess_exec("/usr/bin/python3", "-c", "print(1)",
                                                         stdout=asyncio.subprocess.DEVNULL)
                await p.wait()

            code = "def main(x):\n    return {'y': x * 2}"
            cases = [
                ("math.eval", invoker("math.eval", {"expression": "(2 + 3) * 7"}), "ListTools", list_tools, n),
                ("pg.query", invoker("pg.query", {"sql": "SELECT id, name FROM items WHERE id < 50"}),
                 "asyncpg fetch", pg_direct, n),
                ("lite.query", invoker("lite.query", {"sql": "SELECT id, name FROM items WHERE id < 50"}),
                 "sqlite3 in process", lite_direct, n),
                ("http.request", invoker("http.request", {"url": f"http://127.0.0.1:{http_port}/ping"}),
                 "httpx GET", http_direct, n),
                ("code.python", invoker("code.python", {"code": code, "inputs": {"x": 21}}),
                 "python3 -c spawn", spawn_direct, max(n // 4, 10)),
            ]
            for name, tool_fn, base_name, base_fn, count in cases:
                await tool_fn()
                await base_fn()  # warm both
                tool_ms = await timed(count, tool_fn)
                base_ms = await timed(count, base_fn)
                rows.append((name, count, pct(tool_ms, 50), pct(tool_ms, 99), base_name, pct(base_ms, 50),
                             pct(base_ms, 99)))
                key = name.replace(".", "_")
                figures.update({f"{key}_p50_ms": pct(tool_ms, 50), f"{key}_p99_ms": pct(tool_ms, 99),
                                f"{key}_baseline_p50_ms": pct(base_ms, 50)})

            conc = 4
            started = time.perf_counter()
            call = invoker("code.python", {"code": code, "inputs": {"x": 1}})
            total = max(n // 2, 16)
            sem = asyncio.Semaphore(conc)

            async def one():
                async with sem:
                    await call()
            await asyncio.gather(*(one() for _ in range(total)))
            figures["code_python_c4_per_s"] = total / (time.perf_counter() - started)
            await client.aclose()
        await conn.close()

        print(f"{'tool (gRPC Invoke)':<16}{'calls':>6}{'p50 ms':>9}{'p99 ms':>9}   {'baseline':<20}{'p50 ms':>9}"
              f"{'p99 ms':>9}")
        for name, count, p50, p99, base, b50, b99 in rows:
            print(f"{name:<16}{count:>6}{p50:>9.2f}{p99:>9.2f}   {base:<20}{b50:>9.2f}{b99:>9.2f}")
        print(f"code.python at {conc} concurrent: {figures['code_python_c4_per_s']:.1f} calls/s")
        return figures
    finally:
        if tools is not None:
            tools.terminate()
            tools.wait(30)
        server.should_exit = True
        nats.stop()
        pg.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    figures = asyncio.run(run(100 if args.quick else 400))
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
