"""Gateway benchmark: what the gateway (and the bus behind it) adds to time-to-first-token,
what a chat run costs the control plane in CPU, and how many non-LLM requests per second it answers.

Everything runs as real processes: embedded NATS and Postgres, inference with the bundled
model, rag, tools, orchestrator and the gateway, started side by side on free ports.

1. TTFT, direct: gRPC `inference.v1.Inference/Generate` straight to inference, the clock stops at
   the first chunk carrying text.
2. TTFT, full stack: Dify `POST /v1/chat-messages` (streaming) on a chatflow app whose graph is
   start -> llm -> answer with the same prompt, no memory: gateway -> runs.requested ->
   orchestrator -> inference -> run events -> SSE; the clock stops at the first `message` event.
   Also the OpenAI-compatible route (gateway -> inference gRPC) for comparison, read by a
   minimal HTTP/1.1 client (RawOpenAI: the gateway's added time) and by httpx (plus httpx's own).
   Added TTFT = full-stack p50 - direct p50, at 1 and at 8 concurrent streams, each p50 over 200
   requests (40 with --quick), the three kinds interleaved in the same rounds so that machine
   noise hits them alike.
3. CPU per chat run: CPU time (/proc/<pid>/stat, process and children) of gateway, orchestrator,
   NATS and Postgres summed over the single-stream full-stack requests (`cpu_ms_per_chat_run`;
   inference's model time left out), with each process's share and the bus messages per run.
4. Non-LLM throughput: GET /v1/parameters with an app key (auth, rate-limit counters, the
   published app: cached) driven by Debian's `wrk` (in C, one thread: not the bottleneck; `hey`
   or `h2load --h1` when wrk is missing), 16 connections, the load generator pinned to the last
   core and the gateway to the others (taskset's sched_setaffinity) where there are two or more:
   req/s, p50 and the gateway's CPU per request (`gateway_cpu_ms_per_non_llm_request`).
   Then per HTTP server and protocol (`--servers`, default uvicorn and granian): the gateway is
   restarted on each server (in the clear, then with a certificate) and `h2load` (Debian's
   nghttp2-client) drives it over HTTP/1.1 and, where the server speaks it, HTTP/2 (h2c in the
   clear, h2 over TLS 1.3); servers interleaved round by round.
5. `--profile DIR`: py-spy records the gateway and the orchestrator during the single-stream chat
   rounds and the gateway during the non-LLM load; bench/flame.py summarises each profile by
   layer (FastStream's middlewares, OpenTelemetry, Prometheus, logging, ...). Profiled timings
   are not comparable with unprofiled ones (py-spy takes CPU on 2 cores).

Each figure's phase records /proc/loadavg next to it: the machine is shared.

    .venv/bin/python bench/gateway.py --quick     # ~2 minutes on 2 cores
    .venv/bin/python bench/gateway.py --servers ""
    .venv/bin/python bench/gateway.py --quick --servers uvicorn,granian,hypercorn
    .venv/bin/python bench/gateway.py --quick --servers "" --profile /tmp/loom-prof

The last line printed is one JSON object with every figure. Side by side with an older commit:
docs/gateway.md ("Measuring the run path's CPU") runs this file from a git worktree of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services" / "gateway" / "tests"))

from benchkit import PROMPT, chat_graph, cpu_seconds, scratch_infra  # noqa: E402
from flame import Profiler, render, summary  # noqa: E402
from gateway_stack import app_with_key, start_stack  # noqa: E402

from loom.inference.v1 import inference_pb2 as pb  # noqa: E402
from loom.inference.v1 import inference_pb2_grpc as pb_grpc  # noqa: E402
from loom_common.testing import ServiceProcess  # noqa: E402

try:  # signs each call (service_auth); an older checkout (a side-by-side run) has no signing
    from loom_common.testing import service_channel
except ImportError:  # pragma: no cover - older commits only
    import grpc

    def service_channel(addr: str):
        return grpc.aio.insecure_channel(addr)

if TYPE_CHECKING:
    from loom_common.devstack.certs import ServerCert

MAX_TOKENS = 8
GRAPH = chat_graph(max_tokens=MAX_TOKENS)


async def direct_ttft(stub: pb_grpc.InferenceStub) -> float:
    t0 = time.perf_counter()
    req = pb.GenerateRequest(model="gemma3:270m", messages=[pb.ChatMessage(role="user", content=PROMPT)],
                             sampling=pb.SamplingParams(max_tokens=MAX_TOKENS, temperature=0))
    call = stub.Generate(req, timeout=120)
    first = None
    async for chunk in call:
        if chunk.text and first is None:
            first = time.perf_counter() - t0
    return (first if first is not None else time.perf_counter() - t0) * 1000


STAGES = ("auth", "app", "start")
# Gateway histograms read from /metrics around each measured phase (means of what it observed).
HISTOGRAMS = {"first_event": "loom_gateway_run_first_event_seconds", "event_lag": "loom_gateway_run_event_lag_seconds",
              "relay": "loom_gateway_sse_relay_seconds"}
BREAKDOWN: dict[str, list[dict]] = {}   # per concurrency: one dict per full-stack request


def server_timing(header: str) -> dict[str, float]:
    """`auth;dur=1.2, app;dur=0.4` -> {"auth": 1.2, "app": 0.4} (ms)."""
    out = {}
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = float(dur)
    return out


async def stack_ttft(client: httpx.AsyncClient, key: str, record: list[dict] | None = None) -> float:
    t0 = time.perf_counter()
    first = None
    async with client.stream("POST", "/v1/chat-messages", headers={"Authorization": f"Bearer {key}"},
                             json={"inputs": {}, "query": PROMPT, "user": f"bench-{uuid.uuid4().hex[:6]}",
                                   "response_mode": "streaming"}) as r:
        headers_ms = (time.perf_counter() - t0) * 1000
        async for line in r.aiter_lines():
            if first is None and line.startswith("data: ") and '"event": "message"' in line:
                first = time.perf_counter() - t0
    ttft = (first if first is not None else time.perf_counter() - t0) * 1000
    if record is not None:
        record.append({"ttft": ttft, "headers": headers_ms, **server_timing(r.headers.get("server-timing", ""))})
    return ttft


async def histogram_sums(client: httpx.AsyncClient, admin_url: str) -> dict[str, tuple[float, float]]:
    from prometheus_client.parser import text_string_to_metric_families

    text = (await client.get(f"{admin_url}/metrics")).text  # the gateway's internal admin port
    out = {}
    for family in text_string_to_metric_families(text):
        for key, name in HISTOGRAMS.items():
            if family.name == name:
                values = {s.name: s.value for s in family.samples if s.name.endswith(("_sum", "_count"))}
                out[key] = (values.get(f"{name}_sum", 0.0), values.get(f"{name}_count", 0.0))
    return out


def histogram_means(before: dict, after: dict) -> dict[str, float]:
    """Mean ms of each histogram over what was observed between the two reads."""
    means = {}
    for key in HISTOGRAMS:
        (s0, c0), (s1, c1) = before.get(key, (0, 0)), after.get(key, (0, 0))
        means[key] = (s1 - s0) / (c1 - c0) * 1000 if c1 > c0 else float("nan")
    return means


OPENAI_BODY = {"model": "gemma3:270m", "stream": True, "max_tokens": MAX_TOKENS, "temperature": 0,
               "messages": [{"role": "user", "content": PROMPT}]}  # the model itself, not an app: gateway -> inference


def first_content(frame: str) -> bool:
    """An OpenAI chunk carrying text (not the role-only first chunk, whose content is "")."""
    return frame.startswith("data: ") and '"content": "' in frame and '"content": ""' not in frame


async def openai_ttft(client: httpx.AsyncClient, key: str) -> float:
    """The OpenAI route through httpx (what the openai SDKs use)."""
    t0 = time.perf_counter()
    first = None
    async with client.stream("POST", "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                             json=OPENAI_BODY) as r:
        async for line in r.aiter_lines():
            if first is None and first_content(line):
                first = time.perf_counter() - t0
    return (first if first is not None else time.perf_counter() - t0) * 1000


class RawOpenAI:
    """The OpenAI route through a minimal HTTP/1.1 client, the counterpart of direct_ttft's
    gRPC client (whose parsing is in C): the request in one write on a kept-alive connection
    (one per concurrent stream), the chunked SSE bytes read straight off the socket. httpx's own
    cost (the head and the body in two writes, which the server waits out; its parsing in Python)
    is the client's, not the gateway's: its figure is printed beside this one."""

    def __init__(self, base_url: str, key: str) -> None:
        assert base_url.startswith("http://"), "a plain-HTTP gateway (the bench's stack)"
        host, port = base_url.removeprefix("http://").split(":")
        self.addr = (host, int(port))
        body = json.dumps(OPENAI_BODY).encode()
        self.request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def ttft(self) -> float:
        conn = self.idle.pop() if self.idle else await asyncio.open_connection(*self.addr)
        t0 = time.perf_counter()
        conn[1].write(self.request)
        try:
            head = await conn[0].readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):  # a kept-alive connection the server closed: anew
            conn[1].close()
            self.idle.append(await asyncio.open_connection(*self.addr))
            return await self.ttft()
        if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
            raise RuntimeError(f"unexpected answer: {head[:200]!r}")
        first, buffer = None, b""
        while size := int((await conn[0].readline()).split(b";")[0], 16):
            buffer += (await conn[0].readexactly(size + 2))[:-2]
            *frames, buffer = buffer.split(b"\n\n")
            if first is None and any(first_content(f.decode()) for f in frames):
                first = time.perf_counter() - t0
        await conn[0].readexactly(2)  # the last chunk's CRLF: the connection is ready for the next request
        self.idle.append(conn)
        return (first if first is not None else time.perf_counter() - t0) * 1000

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def rounds(fn, concurrency: int, n_rounds: int) -> list[float]:
    out: list[float] = []
    for _ in range(n_rounds):
        out += await asyncio.gather(*(fn() for _ in range(concurrency)))
    return out


async def non_llm_rps(base_url: str, key: str, seconds: float, clients: int = 16) -> tuple[float, float]:
    done, lat = 0, []
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=30,
                                 limits=httpx.Limits(max_connections=clients)) as c:
        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                r = await c.get("/v1/parameters", headers={"Authorization": f"Bearer {key}"})
                assert r.status_code == 200, r.text
                lat.append((time.perf_counter() - t0) * 1000)
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    return done / elapsed, statistics.median(lat)


def loadavg() -> str:
    """/proc/loadavg's three averages: how busy the shared machine was around a figure."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of a process (and of its children) onto `cpus` (taskset -a -p)."""
    from benchkit import process_tree

    for proc in process_tree(pid):
        for tid in os.listdir(f"/proc/{proc.pid}/task"):
            with contextlib.suppress(OSError):  # the thread ended meanwhile
                os.sched_setaffinity(int(tid), cpus)


def _duration_ms(value: str) -> float:
    """wrk's and hey's durations ("850.00us", "1.23ms", "1.2s", "1.01m", "0.0012 secs") in ms."""
    m = re.fullmatch(r"([\d.]+)\s*(us|ms|s|secs|m|h)", value.strip())
    if m is None:
        raise ValueError(f"not a duration: {value!r}")
    return float(m[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "secs": 1000.0, "m": 60_000.0, "h": 3_600_000.0}[m[2]]


def load_generator() -> str:
    """The C/Go load generator at hand, best first (Debian: apt-get install wrk)."""
    for name in ("wrk", "hey", "h2load"):
        if shutil.which(name):
            return name
    sys.exit("bench/gateway.py needs wrk (apt-get install wrk), hey or h2load (nghttp2-client)")


def drive(tool: str, url: str, key: str, seconds: float, connections: int, cpus: set[int] | None) -> dict:
    """One run of `tool` against `url`: {requests, rps, p50_ms}; pinned to `cpus` when given.
    Any non-2xx answer fails the bench (a refused key would measure the 401 path)."""
    if tool == "h2load":  # h2load's own run (16 connections; unpinned); it reports a mean, not a p50
        r = h2load(url, key, seconds, ["--h1"])
        return {"requests": int(r["rps"] * seconds), "rps": r["rps"], "p50_ms": r["mean_ms"]}
    auth = f"Authorization: Bearer {key}"
    secs = str(max(1, int(seconds)))
    cmd = {"wrk": ["wrk", "-t1", f"-c{connections}", f"-d{secs}s", "--latency", "-H", auth, url],
           "hey": ["hey", "-z", f"{secs}s", "-c", str(connections), "-H", auth, url]}[tool]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60,
                         preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None).stdout
    if tool == "wrk":
        if "Non-2xx" in out or not re.search(r"(\d+) requests in", out):
            raise RuntimeError(f"wrk: errors\n{out[-1500:]}")
        n = int(re.search(r"(\d+) requests in", out)[1])
        try:
            # The distribution's own line: "50%" also ends a Stdev column ("83.50%").
            p50_ms = _duration_ms(re.search(r"^\s*50%\s+(\S+)", out, re.MULTILINE)[1])
        except (TypeError, ValueError) as e:
            raise RuntimeError(f"wrk: unexpected output ({e})\n{out[-1500:]}") from e
        return {"requests": n, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), "p50_ms": p50_ms}
    codes = dict(re.findall(r"\[(\d{3})\]\s+(\d+) responses", out))
    if set(codes) != {"200"}:
        raise RuntimeError(f"hey: status codes {codes}\n{out[-1500:]}")
    return {"requests": int(codes["200"]), "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
            "p50_ms": _duration_ms(re.search(r"50% in (\S+ secs)", out)[1])}


def non_llm_pinned(stack, key: str, seconds: float, rounds_n: int, pg_pid: int | None) -> dict:
    """GET /v1/parameters under the C load generator, the generator on the last core and the
    gateway on the others (2+ cores): medians over rounds of req/s, p50 and CPU per request of
    the gateway (and Postgres, which admits each key)."""
    tool = load_generator()
    gateway = next(p for p in stack.procs if p.name == "gateway").proc.pid
    cpus = sorted(os.sched_getaffinity(0))
    gen_cpus, gw_cpus = ({cpus[-1]}, set(cpus[:-1])) if len(cpus) >= 2 else (None, None)
    if gw_cpus:
        pin(gateway, gw_cpus)
    url = f"{stack.gateway_url}/v1/parameters"
    procs = {"gateway": gateway} | ({"postgres": pg_pid} if pg_pid else {})
    runs, loads = [], []
    try:
        drive(tool, url, key, 1, 16, gen_cpus)  # warm-up: pools, the published-app cache
        for _ in range(rounds_n):
            loads.append(loadavg())
            before = cpu_seconds(procs)
            r = drive(tool, url, key, seconds, 16, gen_cpus)
            used = {k: v - before[k] for k, v in cpu_seconds(procs).items()}
            runs.append(r | {f"{k}_cpu_ms_per_request": v * 1000 / r["requests"] for k, v in used.items()})
    finally:
        if gw_cpus:
            pin(gateway, set(cpus))
    out = {k: p50([r[k] for r in runs]) for k in runs[0] if k != "requests"}
    pinned = f"{tool} on cpu {sorted(gen_cpus)}, gateway on cpu {sorted(gw_cpus)}" if gw_cpus else f"{tool}, unpinned"
    return out | {"requests": sum(r["requests"] for r in runs), "generator": pinned, "loadavg": loads}


# (protocol label, h2load flags, TLS?) that each server speaks; uvicorn has no HTTP/2.
# "_mux": the same 16 requests in flight as 16 streams on one connection (what HTTP/2 is for).
PROTOCOLS = {"h1": (["--h1"], False), "h2c": ([], False), "h2c_mux": (["-c", "1", "-m", "16"], False),
             "h1_tls": (["--h1"], True), "h2_tls": ([], True), "h2_tls_mux": (["-c", "1", "-m", "16"], True)}
# Hypercorn's HTTP/1.1 status line has an empty reason phrase ("HTTP/1.1 200 \r\n"), which
# h2load counts as a failed response: its HTTP/2 alone is measured.
SERVER_PROTOCOLS = {"uvicorn": ("h1", "h1_tls"), "granian": tuple(PROTOCOLS),
                    "hypercorn": ("h2c", "h2c_mux", "h2_tls", "h2_tls_mux")}


def _ms(value: str) -> float:
    """h2load's durations ("850us", "1.23ms", "1.2s") in ms."""
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def h2load(url: str, key: str, seconds: float, flags: list[str]) -> dict:
    """One h2load run (by default 16 connections of one stream each, like the 16 httpx clients;
    `flags` may say otherwise): req/s, mean latency."""
    out = subprocess.run(["h2load", "-D", str(int(seconds)), "-c", "16", "-m", "1", "-t", "1", *flags,
                          "-H", f"Authorization: Bearer {key}", url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))
    ok, failed = map(int, re.search(r"(\d+) succeeded, (\d+) failed", out).groups())
    bad = sum(map(int, re.search(r"(\d+) 4xx, (\d+) 5xx", out).groups()))
    protocol = re.search(r"Application protocol: (\S+)", out)
    # The requests in flight when the time is up end as failed (16 at the most): not errors.
    if ok == 0 or bad or failed > 16:
        raise RuntimeError(f"h2load: {ok} succeeded, {failed} failed, {bad} 4xx/5xx:\n{out[-1500:]}")
    mean = _ms(re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out).group(1))
    return {"rps": rps, "mean_ms": mean, "protocol": protocol.group(1) if protocol else "h1"}


def restart_gateway(stack, server: str, cert: ServerCert | None) -> ServiceProcess:
    """The stack's gateway again, on the same ports, under `server` (with a certificate or not).
    Cert and key only: the gateway's own gRPC clients stay plaintext to this stack's services."""
    old = next(p for p in stack.procs if p.name == "gateway")
    old.stop(15)
    env = {k: v for k, v in old.env.items() if not k.startswith("LOOM_TLS_")}
    env["LOOM_GATEWAY_HTTP_SERVER"] = server
    if cert is not None:
        env |= {"LOOM_TLS_CERT_FILE": str(cert.cert_file), "LOOM_TLS_KEY_FILE": str(cert.key_file)}
    new = ServiceProcess("gateway", env, old.http_port, old.log_path, old.admin_port,
                         ca_file=cert.ca_file if cert else None).start(120)
    stack.procs[stack.procs.index(old)] = new
    return new


def non_llm_by_server(stack, key: str, servers: list[str], rounds_n: int, seconds: float, tls_dir: Path) -> dict:
    """{server: {protocol: {rps, mean_ms}}}: medians over interleaved rounds."""
    from loom_common.devstack import certs

    if shutil.which("h2load") is None:
        sys.exit("bench/gateway.py needs h2load: apt-get install nghttp2-client (make bench installs it)")
    cert = certs.ensure_server_cert(tls_dir, "gateway")
    started_on = next(p for p in stack.procs if p.name == "gateway").env.get("LOOM_GATEWAY_HTTP_SERVER", "uvicorn")
    runs: dict[str, dict[str, list[dict]]] = {s: {p: [] for p in SERVER_PROTOCOLS[s]} for s in servers}
    for _ in range(rounds_n):
        for server in servers:
            for tls_on in (False, True):
                gateway = restart_gateway(stack, server, cert if tls_on else None)
                url = f"{'https' if tls_on else 'http'}://127.0.0.1:{gateway.http_port}/v1/parameters"
                for proto in SERVER_PROTOCOLS[server]:
                    flags, needs_tls = PROTOCOLS[proto]
                    if needs_tls == tls_on:
                        runs[server][proto].append(h2load(url, key, seconds, flags))
    restart_gateway(stack, started_on, None)  # as it was, for what the bench measures next
    return {server: {proto: {"rps": p50([r["rps"] for r in rs]), "mean_ms": p50([r["mean_ms"] for r in rs]),
                             "protocol": rs[0]["protocol"]} for proto, rs in by_proto.items()}
            for server, by_proto in runs.items()}


def non_llm_with_redis(stack, redis_dir: Path, rounds_n: int, seconds: float, pg_pid: int) -> dict:
    """GET /v1/parameters with rate limits counted (high limits, never reached), the gateway
    restarted without and with Redis (Debian's redis-server), interleaved round by round:
    {"postgres" | "redis": {rps, p50_ms, postgres_cpu_ms_per_1k, gateway_cpu_ms_per_1k}}."""
    from loom_common.devstack.redis_server import EmbeddedRedis, redis_binary
    from loom_common.testing import ServiceProcess

    if redis_binary() is None:
        sys.exit("--redis needs Debian's redis-server: apt-get install redis-server (make test installs it)")
    _, key = app_with_key(stack, "chat", name="bench-redis")
    redis = EmbeddedRedis(redis_dir).start()
    counted = {"LOOM_GATEWAY_KEY_RPM": "100000000", "LOOM_GATEWAY_WORKSPACE_RPM": "100000000"}
    runs: dict[str, list[tuple[float, float, float, float]]] = {"postgres": [], "redis": []}
    try:
        for _ in range(rounds_n):
            for variant in runs:
                old = next(p for p in stack.procs if p.name == "gateway")
                old.stop(15)
                env = {k: v for k, v in old.env.items() if k != "LOOM_REDIS_URL"} | counted
                if variant == "redis":
                    env["LOOM_REDIS_URL"] = redis.url
                new = ServiceProcess("gateway", env, old.http_port, old.log_path, old.admin_port).start(120)
                stack.procs[stack.procs.index(old)] = new
                asyncio.run(non_llm_rps(stack.gateway_url, key, 1))  # warm-up: pools, caches
                procs = {"postgres": pg_pid, "gateway": new.proc.pid}
                before = cpu_seconds(procs)
                rps, lat = asyncio.run(non_llm_rps(stack.gateway_url, key, seconds))
                used = {k: v - before[k] for k, v in cpu_seconds(procs).items()}
                n = rps * seconds / 1000  # thousands of requests (about: rps is over the run's own time)
                runs[variant].append((rps, lat, used["postgres"] * 1000 / n, used["gateway"] * 1000 / n))
    finally:
        redis.stop()
    return {v: {"rps": p50([r[0] for r in rs]), "p50_ms": p50([r[1] for r in rs]),
                "postgres_cpu_ms_per_1k": p50([r[2] for r in rs]), "gateway_cpu_ms_per_1k": p50([r[3] for r in rs])}
            for v, rs in runs.items()}


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


CONTROL_PLANE = ("gateway", "orchestrator", "nats", "postgres")  # cpu_ms_per_chat_run: all but the model


def nats_counts(monitor_port: int | None) -> Counter:
    """Messages published to NATS so far ("published"), delivered to each named client
    ("loom-orchestrator", ...) and stored in each JetStream stream ("stream RUNS", ...), from
    its monitoring port; empty without one."""
    if monitor_port is None:
        return Counter()
    base = f"http://127.0.0.1:{monitor_port}"
    out = Counter({"published": httpx.get(f"{base}/varz", timeout=5).json()["in_msgs"]})
    for conn in httpx.get(f"{base}/connz?limit=4096", timeout=5).json().get("connections") or []:
        out[conn.get("name") or "?"] += conn.get("out_msgs", 0)
    # JetStream's share: messages stored per stream (last sequence: work queues delete what is acked).
    for account in httpx.get(f"{base}/jsz?streams=true", timeout=5).json().get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            out[f"stream {stream['name']}"] = stream["state"]["last_seq"]
    return out


async def chat_cpu(client: httpx.AsyncClient, key: str, procs: dict[str, int], monitor_port: int | None,
                   runs: list[float], record: list[dict] | None = None, conc: int = 1) -> tuple[dict, Counter]:
    """One round of `conc` full-stack chat runs (TTFTs appended to `runs`): the CPU seconds each
    process spent on it and the NATS messages it caused."""
    m0 = nats_counts(monitor_port)
    cpu_before = cpu_seconds(procs)
    runs += await rounds(lambda: stack_ttft(client, key, record), conc, 1)
    await asyncio.sleep(0.05)  # the run's tail (records, acks) after its last event
    cpu = {name: value - cpu_before[name] for name, value in cpu_seconds(procs).items()}
    msgs = nats_counts(monitor_port)
    msgs.subtract(m0)
    return cpu, msgs


async def measure(stack, quick: bool, infra_pids: dict[str, int] | None = None, monitor_port: int | None = None,
                  profile_dir: Path | None = None) -> tuple[dict, str]:
    _, chat_key = app_with_key(stack, "chatflow", GRAPH, name="bench")
    _, param_key = app_with_key(stack, "chat", name="bench-params")
    procs = {p.name: p.proc.pid for p in stack.procs if p.proc is not None} | (infra_pids or {})
    admin_url = getattr(stack, "admin_url", "") or stack.gateway_url  # older stacks: /metrics on the API port
    channel = service_channel(stack.inference_addr)
    stub = pb_grpc.InferenceStub(channel)
    results: dict = {}
    raw = RawOpenAI(stack.gateway_url, chat_key)
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as client:
        for _ in range(1 if quick else 2):  # warm-up: the chat model's load, pools, consumers
            await direct_ttft(stub)
            await stack_ttft(client, chat_key)
            await openai_ttft(client, chat_key)
            await raw.ttft()
        # ... and at 8 streams, so the c8 figures are not the connection pools growing.
        await rounds(lambda: stack_ttft(client, chat_key), 8, 1)
        await rounds(lambda: openai_ttft(client, chat_key), 8, 1)
        await rounds(raw.ttft, 8, 1)
        # p50s over 200 requests of each kind at each concurrency (40 with --quick).
        for conc, n in ((1, 40 if quick else 200), (8, 5 if quick else 25)):
            direct, full, oai, oai_httpx, record = [], [], [], [], []
            means = {key: [] for key in HISTOGRAMS}
            cpu = dict.fromkeys(procs, 0.0)
            msgs: Counter = Counter()
            load = [loadavg()]
            for _ in range(n):  # interleaved rounds
                direct += await rounds(lambda: direct_ttft(stub), conc, 1)
                before = await histogram_sums(client, admin_url)
                used, sent = await chat_cpu(client, chat_key, procs, monitor_port, full, record, conc)
                for name, value in used.items():
                    cpu[name] += value
                msgs.update(sent)
                for key, value in histogram_means(before, await histogram_sums(client, admin_url)).items():
                    means[key].append(value)
                oai_httpx += await rounds(lambda: openai_ttft(client, chat_key), conc, 1)
                oai += await rounds(raw.ttft, conc, 1)
            load.append(loadavg())
            breakdown = {stage: p50([r.get(stage, float("nan")) for r in record]) for stage in (*STAGES, "headers")}
            breakdown["gateway_pre_publish"] = p50([sum(r.get(s, 0.0) for s in STAGES) for r in record])
            breakdown.update({key: statistics.fmean(v) for key, v in means.items()})
            results[f"c{conc}"] = {"direct_p50": p50(direct), "stack_p50": p50(full), "openai_p50": p50(oai),
                                   "openai_httpx_p50": p50(oai_httpx),
                                   "n": len(direct), "breakdown": breakdown, "loadavg": load,
                                   "cpu_ms_per_run": {k: v * 1000 / len(full) for k, v in cpu.items()},
                                   "msgs_per_run": {k: v / len(full) for k, v in msgs.items()}}
        if profile_dir is not None:
            results["profile"] = await profile_chat(client, chat_key, procs, monitor_port, profile_dir,
                                                    40 if quick else 100)
    await channel.close()
    raw.close()
    results["non_llm"] = non_llm_pinned(stack, param_key, 3 if quick else 10, 1 if quick else 3,
                                        (infra_pids or {}).get("postgres"))
    if profile_dir is not None:
        gateway = procs["gateway"]
        with Profiler(gateway, profile_dir / "gateway-non_llm.txt"):
            profiled = non_llm_pinned(stack, param_key, 5, 1, None)
        results["profile"]["gateway-non_llm"] = {"summary": summary(profile_dir / "gateway-non_llm.txt"),
                                                 "cpu_ms_per_unit": profiled["gateway_cpu_ms_per_request"],
                                                 "unit": "request"}
    return results, param_key


async def profile_chat(client: httpx.AsyncClient, key: str, procs: dict[str, int], monitor_port: int | None,
                       out: Path, n: int) -> dict:
    """`n` more single-stream chat runs with py-spy on the gateway and the orchestrator (not
    counted in the figures above): each one's profile summary, CPU per run and per NATS message
    delivered to it (what a per-message middleware's share is multiplied by)."""
    files = {name: out / f"{name}-chat.txt" for name in ("gateway", "orchestrator")}
    cpu = dict.fromkeys(procs, 0.0)
    msgs: Counter = Counter()
    with contextlib.ExitStack() as stack:
        for name, path in files.items():
            stack.enter_context(Profiler(procs[name], path))
        await asyncio.sleep(1)  # py-spy attached
        for _ in range(n):
            used, sent = await chat_cpu(client, key, procs, monitor_port, [])
            for name, value in used.items():
                cpu[name] += value
            msgs.update(sent)
    result = {}
    for name, path in files.items():
        delivered = msgs.get(f"loom-{name}", 0)
        result[f"{name}-chat"] = {"summary": summary(path), "cpu_ms_per_unit": cpu[name] * 1000 / n, "unit": "chat run",
                                  "msgs_delivered_per_run": delivered / n}
    return result


def print_by_server(res: dict) -> dict:
    by_server = res.get("by_server", {})
    if by_server:
        print("non-LLM GET /v1/parameters by server (h2load; 16 connections x 1 stream, _mux: 1 connection x "
              "16 streams; req/s, mean latency):")
        for server, protos in by_server.items():
            print(f"  {server:<10}" + "  ".join(f"{proto} {r['rps']:.0f}/s {r['mean_ms']:.1f} ms"
                                                for proto, r in protos.items()))
    return by_server


def by_server_keys(by_server: dict) -> dict:
    """The JSON keys: HTTP/1.1 on the server best at it, HTTP/2 on the one Loom serves it with (granian)."""
    h1 = max(((p["h1"]["rps"], s) for s, p in by_server.items() if "h1" in p), default=(None, None))
    h2 = by_server.get("granian", {})

    def rps(proto: str) -> float | None:
        return round(h2[proto]["rps"], 1) if proto in h2 else None

    return {"non_llm_rps_http1": round(h1[0], 1) if h1[0] is not None else None, "non_llm_http1_server": h1[1],
            "non_llm_rps_http2": rps("h2c"), "non_llm_rps_http2_mux": rps("h2c_mux"),
            "non_llm_rps_http1_tls": rps("h1_tls"), "non_llm_rps_http2_tls": rps("h2_tls"),
            "non_llm_rps_http2_tls_mux": rps("h2_tls_mux"),
            "non_llm_by_server": {s: {p: round(r["rps"], 1) for p, r in protos.items()}
                                  for s, protos in by_server.items()}}


def commit() -> str:
    """The checkout this file runs from (a side-by-side run: the worktree's commit)."""
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", "services",
                            "libs"], capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("+changes" if dirty else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--redis", action="store_true",
                    help="also the non-LLM rate with rate limits counted in Postgres and in Redis (redis-server)")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="also profile the gateway and the orchestrator with py-spy (extra runs, not in the figures);"
                         " the collapsed stacks go to DIR, their summaries to the output")
    ap.add_argument("--non-llm-only", action="store_true",
                    help="only the non-LLM rates by server and protocol (no model, no TTFT rounds)")
    ap.add_argument("--servers", default="uvicorn,granian",
                    help="HTTP servers the non-LLM rate is measured on, comma-separated "
                         "(uvicorn, granian, hypercorn); empty: skip that part")
    args = ap.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    t_start = time.perf_counter()
    with scratch_infra("loom-bench-gw-") as (root, nats, pg):
        # No request here embeds: the embedding model is not loaded (its torch import alone takes
        # ~10 s of start-up); the chat model loads on the first warm-up request.
        stack = start_stack(nats.url, pg.url("loom_bench"), root / "home",
                            gateway_env={"LOOM_GATEWAY_KEY_RPM": "0", "LOOM_GATEWAY_WORKSPACE_RPM": "0"},
                            inference_env={"LOOM_INFERENCE_LOAD_MODELS_AT_START": "false"})
        t_ready = time.perf_counter()
        try:
            if args.non_llm_only:
                res, param_key = {}, app_with_key(stack, "chat", name="bench-params")[1]
            else:
                res, param_key = asyncio.run(measure(stack, args.quick,
                                                     {"nats": nats.proc.pid, "postgres": pg.proc.pid},
                                                     getattr(nats, "monitor_port", None), args.profile))
            if servers:
                res["by_server"] = non_llm_by_server(stack, param_key, servers, 1 if args.quick else 3,
                                                     3 if args.quick else 8, root / "tls")
            if args.redis:
                res["by_redis"] = non_llm_with_redis(stack, root / "redis", 1 if args.quick else 3,
                                                      3 if args.quick else 8, pg.proc.pid)
        finally:
            stack.stop()
    if args.non_llm_only:
        print(json.dumps({**by_server_keys(print_by_server(res)), "quick": args.quick}))
        return
    rows = [("streams", "direct inference TTFT p50", "full stack (Dify chat) p50", "added",
             "OpenAI route p50 (raw HTTP/1.1)", "added", "OpenAI route p50 (httpx)", "added")]
    for c in ("c1", "c8"):
        r = res[c]
        rows.append((c[1:], f"{r['direct_p50']:.1f} ms", f"{r['stack_p50']:.1f} ms",
                     f"{r['stack_p50'] - r['direct_p50']:.1f} ms", f"{r['openai_p50']:.1f} ms",
                     f"{r['openai_p50'] - r['direct_p50']:.1f} ms", f"{r['openai_httpx_p50']:.1f} ms",
                     f"{r['openai_httpx_p50'] - r['direct_p50']:.1f} ms"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    print("\nfull-stack breakdown (ms; stages p50 from the Server-Timing header, the rest means of the "
          "gateway's histograms):")
    cols = ("auth", "app", "start", "gateway_pre_publish", "headers", "first_event", "event_lag", "relay")
    print("streams  " + "  ".join(cols))
    for c in ("c1", "c8"):
        b = res[c]["breakdown"]
        print(f"{c[1:]:<7}  " + "  ".join(f"{b[k]:>{len(k)}.2f}" for k in cols))
    print("  auth = request in -> key admitted; app = published app found; start = rows written, run's feed "
          "subscribed, runs.requested stored (overlapped);\n  gateway_pre_publish = auth+app+start; headers = "
          "client-side time to the response head;\n  first_event = publish -> the run's first event at the "
          "gateway; event_lag = producer stamp -> read off the bus; relay = bus -> SSE frame written")
    cpu = res["c1"]["cpu_ms_per_run"]
    per_run = sum(cpu.get(name, 0.0) for name in CONTROL_PLANE)
    msgs = res["c1"]["msgs_per_run"]
    print(f"CPU per chat run at 1 stream (ms, process and children; loadavg {' -> '.join(res['c1']['loadavg'])}): "
          f"control plane {per_run:.1f} = " + ", ".join(f"{name} {cpu[name]:.1f}" for name in CONTROL_PLANE
                                                          if name in cpu)
          + "; not counted: " + ", ".join(f"{name} {ms:.1f}" for name, ms in cpu.items() if name not in CONTROL_PLANE))
    if msgs:
        print("NATS messages per chat run: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(msgs.items()) if v))
    nl = res["non_llm"]
    print(f"non-LLM: GET /v1/parameters, 16 connections ({nl['generator']}; loadavg {', '.join(nl['loadavg'])}): "
          f"{nl['rps']:.0f} req/s, p50 {nl['p50_ms']:.2f} ms, CPU per request: gateway "
          f"{nl['gateway_cpu_ms_per_request']:.3f} ms"
          + (f", postgres {nl['postgres_cpu_ms_per_request']:.3f} ms" if "postgres_cpu_ms_per_request" in nl else ""))
    for name, prof in res.get("profile", {}).items():
        print(render(f"\nprofile {name} ({prof['cpu_ms_per_unit']:.2f} ms CPU per {prof['unit']})", prof["summary"]))
        per_msg = prof.get("msgs_delivered_per_run")
        if per_msg:
            # Each layer's exclusive share of the process's CPU, per message delivered to it: a range,
            # since the loop's samples include waiting for a core (low: as sampled; high: none did).
            layers, python = prof["summary"]["layers"], prof["summary"]["python_share"] or 1
            print(f"  CPU ms per NATS message delivered to it ({per_msg:.1f} per run): " + ", ".join(
                f"{layer} {layers[layer] * prof['cpu_ms_per_unit'] / per_msg:.3f}-"
                f"{layers[layer] / python * prof['cpu_ms_per_unit'] / per_msg:.3f}"
                for layer in layers if layer.startswith(("OpenTelemetry", "Prometheus", "logging", "faststream"))))
    by_server = print_by_server(res)
    print(f"(stack start {t_ready - t_start:.0f} s, measuring {time.perf_counter() - t_ready:.0f} s)")
    by_redis = res.get("by_redis", {})
    for variant, r in by_redis.items():
        print(f"non-LLM, rate limits counted in {variant}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, "
              f"CPU per 1k requests: postgres {r['postgres_cpu_ms_per_1k']:.0f} ms, "
              f"gateway {r['gateway_cpu_ms_per_1k']:.0f} ms")
    print(json.dumps({
        "added_ttft_ms_p50_c1": round(res["c1"]["stack_p50"] - res["c1"]["direct_p50"], 2),
        "added_ttft_ms_p50_c8": round(res["c8"]["stack_p50"] - res["c8"]["direct_p50"], 2),
        "added_ttft_ms_p50_openai_c1": round(res["c1"]["openai_p50"] - res["c1"]["direct_p50"], 2),
        "added_ttft_ms_p50_openai_c8": round(res["c8"]["openai_p50"] - res["c8"]["direct_p50"], 2),
        # the same route through httpx (the openai SDKs' client): the gateway's added time plus httpx's own
        "added_ttft_ms_p50_openai_httpx_c1": round(res["c1"]["openai_httpx_p50"] - res["c1"]["direct_p50"], 2),
        "added_ttft_ms_p50_openai_httpx_c8": round(res["c8"]["openai_httpx_p50"] - res["c8"]["direct_p50"], 2),
        "direct_ttft_ms_p50_c1": round(res["c1"]["direct_p50"], 2),
        "direct_ttft_ms_p50_c8": round(res["c8"]["direct_p50"], 2),
        "gateway_pre_publish_ms_p50_c1": round(res["c1"]["breakdown"]["gateway_pre_publish"], 2),
        "gateway_pre_publish_ms_p50_c8": round(res["c8"]["breakdown"]["gateway_pre_publish"], 2),
        "first_event_ms_mean_c1": round(res["c1"]["breakdown"]["first_event"], 2),
        "first_event_ms_mean_c8": round(res["c8"]["breakdown"]["first_event"], 2),
        "sse_relay_ms_mean_c1": round(res["c1"]["breakdown"]["relay"], 3),
        "sse_relay_ms_mean_c8": round(res["c8"]["breakdown"]["relay"], 3),
        "cpu_ms_per_chat_run": round(per_run, 1),
        **{f"cpu_ms_per_run_c1_{name}": round(ms, 1) for name, ms in cpu.items()},
        "nats_msgs_published_per_chat_run": round(msgs["published"], 1) if "published" in msgs else None,
        "non_llm_rps": round(nl["rps"], 1), "non_llm_p50_ms": round(nl["p50_ms"], 2),
        "gateway_cpu_ms_per_non_llm_request": round(nl["gateway_cpu_ms_per_request"], 3),
        "postgres_cpu_ms_per_non_llm_request": round(nl.get("postgres_cpu_ms_per_request", float("nan")), 3),
        "non_llm_load_generator": nl["generator"],
        "n_c1": res["c1"]["n"], "n_c8": res["c8"]["n"],
        "loadavg_c1": res["c1"]["loadavg"], "loadavg_c8": res["c8"]["loadavg"], "loadavg_non_llm": nl["loadavg"],
        "commit": commit(), "profiled": args.profile is not None,
        **by_server_keys(by_server),
        **({f"non_llm_{k}_counted_in_{v}": round(x, 1) for v, r in by_redis.items() for k, x in r.items()}),
        "quick": args.quick}))


if __name__ == "__main__":
    main()
