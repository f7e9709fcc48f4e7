"""What a chat run costs the control plane in CPU, split into a fixed part and a part per token,
and (with --profile) where one process spends it.

The stack is bench/gateway.py's (embedded NATS and Postgres, every service as a real process),
on the inference service's fake model by default (`--model bundled` for gemma3:270m): the
control plane's work is the same, and the model takes no CPU from it. Chatflows start -> llm ->
answer of 1, 8 and 24 tokens (`--tokens`) run one at a time, interleaved; each run's CPU (each
process with its children, /proc) is read around it, plus 50 ms for its tail (records, acks),
as bench/gateway.py does for `cpu_ms_per_chat_run`. A least-squares line over the token counts
splits the control plane's CPU into `fixed_ms` (a run's start, its records and its events
other than text) and `per_token_ms`.

`--profile orchestrator` (or gateway, rag, ...) then pins that process's threads alone to the
last core and everything else (the other services, NATS, Postgres, this client, py-spy) to
the others, and records it with py-spy over more runs: with no other process on its core, a
sample is CPU time (py-spy counts a thread waiting for a core as busy, which on 2 shared cores
inflates whatever call woke another process, e.g. a socket write). Printed: milliseconds per
run by function, inclusive and self (bench/flame.py `per_unit`). Pinned runs are slower and
are not in the figures above.

    .venv/bin/python bench/chat_cpu.py --quick
    .venv/bin/python bench/chat_cpu.py --model bundled --idle 30
    .venv/bin/python bench/chat_cpu.py --runs 60 --profile orchestrator --profile-dir /tmp/loom-prof

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services" / "gateway" / "tests"))

from benchkit import (  # noqa: E402
    BUNDLED_CHAT,
    FAKE_CHAT,
    chat_graph,
    cpu_seconds,
    fake_model_config,
    scratch_infra,
)
from flame import Profiler, per_unit  # noqa: E402
from gateway import pin, stack_ttft  # noqa: E402
from gateway_stack import app_with_key, start_stack  # noqa: E402

CONTROL_PLANE = ("gateway", "orchestrator", "nats", "postgres")


async def one_run(client: httpx.AsyncClient, key: str, procs: dict[str, int]) -> tuple[dict[str, float], float]:
    before, t0 = cpu_seconds(procs), time.perf_counter()
    await stack_ttft(client, key)  # reads the stream to its end
    await asyncio.sleep(0.05)  # the run's tail (records, acks) after its last event
    wall = time.perf_counter() - t0
    return {name: value - before[name] for name, value in cpu_seconds(procs).items()}, wall


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(value at 1 token, slope per token) of a least-squares line through (tokens, ms)."""
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my + slope * (1 - mx), slope


async def measure(stack, procs: dict[str, int], model: str, tokens: list[int], runs: int, idle_s: float,
                  profile: str | None, profile_dir: Path | None) -> dict:
    keys = {t: app_with_key(stack, "chatflow", chat_graph(model, max_tokens=t), name=f"cpu-{t}")[1] for t in tokens}
    cpu = {t: dict.fromkeys(procs, 0.0) for t in tokens}
    wall = dict.fromkeys(tokens, 0.0)
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as client:
        for key in keys.values():  # warm-up: the model's load, pools, consumers
            for _ in range(3):
                await stack_ttft(client, key)
        for _ in range(runs):  # interleaved, so that the box's drift hits every length alike
            for t, key in keys.items():
                used, seconds = await one_run(client, key, procs)
                wall[t] += seconds
                for name, value in used.items():
                    cpu[t][name] += value
        result: dict = {"per_run": {t: {name: v * 1000 / runs for name, v in cpu[t].items()} for t in tokens},
                        "wall_ms": {t: wall[t] * 1000 / runs for t in tokens}}
        if idle_s > 0:  # what each process costs doing nothing (part of every run's window)
            await asyncio.sleep(2.0)  # the last run's tail
            before, t0 = cpu_seconds(procs), time.perf_counter()
            await asyncio.sleep(idle_s)
            seconds = time.perf_counter() - t0
            result["idle_ms_per_s"] = {name: (v - before[name]) * 1000 / seconds
                                       for name, v in cpu_seconds(procs).items()}
        if profile is not None:
            result["profile"] = await profile_one(client, keys[tokens[len(tokens) // 2]], procs, profile,
                                                  profile_dir or Path(tempfile.mkdtemp(prefix="loom-prof-")), runs)
            result["profile"]["tokens"] = tokens[len(tokens) // 2]
    return result


async def profile_one(client: httpx.AsyncClient, key: str, procs: dict[str, int], name: str, out: Path,
                      runs: int) -> dict:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--profile needs two cores or more (the profiled process gets one alone)")
    alone, rest = {cpus[-1]}, set(cpus[:-1])
    for other, pid in procs.items():
        pin(pid, alone if other == name else rest)
    os.sched_setaffinity(0, rest)  # this client, and py-spy (started from it), off that core
    path = out / f"{name}-chat.txt"
    try:
        with Profiler(procs[name], path, rate=1000):
            await asyncio.sleep(1.0)  # py-spy attached
            before = cpu_seconds(procs)[name]
            for _ in range(runs):
                await stack_ttft(client, key)
                await asyncio.sleep(0.05)
            used = cpu_seconds(procs)[name] - before
    finally:
        for pid in procs.values():
            pin(pid, set(cpus))
        os.sched_setaffinity(0, set(cpus))
    return {"process": name, "file": str(path), "cpu_ms_per_run": used * 1000 / runs,
            **per_unit(path, runs, 1000)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="15 runs of each length instead of 40")
    ap.add_argument("--runs", type=int, help="runs of each length")
    ap.add_argument("--tokens", default="1,8,24", help="answer lengths (max_tokens), comma-separated")
    ap.add_argument("--model", choices=("fake", "bundled"), default="fake",
                    help="inference's fake model (the control plane alone) or the bundled gemma3:270m")
    ap.add_argument("--idle", type=float, default=0.0, metavar="SECONDS",
                    help="then also each process's CPU while the stack sits idle this long (ms a second)")
    ap.add_argument("--profile", metavar="PROCESS", help="also profile this process alone on one core")
    ap.add_argument("--profile-dir", type=Path, help="where the profile goes (default: a new temp dir)")
    args = ap.parse_args()
    tokens = sorted({int(t) for t in args.tokens.split(",") if t})
    runs = args.runs or (15 if args.quick else 40)
    with scratch_infra("loom-bench-cpu-") as (root, nats, pg):
        inference_env = ({"LOOM_INFERENCE_LOAD_MODELS_AT_START": "false"} if args.model == "bundled" else
                         fake_model_config(root / "inference-fake.toml", streams=8, step_delay_s=0.015))
        stack = start_stack(nats.url, pg.url("loom_bench"), root / "home",
                            gateway_env={"LOOM_GATEWAY_KEY_RPM": "0", "LOOM_GATEWAY_WORKSPACE_RPM": "0"},
                            inference_env=inference_env)
        try:
            procs = {p.name: p.proc.pid for p in stack.procs if p.proc is not None} | {
                "nats": nats.proc.pid, "postgres": pg.proc.pid}
            res = asyncio.run(measure(stack, procs, FAKE_CHAT if args.model == "fake" else BUNDLED_CHAT, tokens,
                                      runs, args.idle, args.profile, args.profile_dir))
        finally:
            stack.stop()
    per_run, load = res["per_run"], os.getloadavg()
    print(f"CPU per chat run (ms, process and children), {runs} runs of each length, model {args.model}, "
          f"loadavg {load[0]:.2f}:")
    names = [*CONTROL_PLANE, *(n for n in per_run[tokens[0]] if n not in CONTROL_PLANE)]
    print(f"{'tokens':>6}  {'wall':>7}  {'control':>7}  " + "  ".join(f"{n:>12}" for n in names))
    for t in tokens:
        control = sum(per_run[t][n] for n in CONTROL_PLANE)
        cells = "  ".join(f"{per_run[t][n]:12.2f}" for n in names)
        print(f"{t:>6}  {res['wall_ms'][t]:7.1f}  {control:7.2f}  {cells}")
    split = {n: fit([(t, per_run[t][n]) for t in tokens]) for n in CONTROL_PLANE}
    fixed, per_token = sum(f for f, _ in split.values()), sum(s for _, s in split.values())
    print(f"control plane: fixed {fixed:.2f} ms a run + {per_token:.3f} ms a token ("
          + ", ".join(f"{n} {f:.2f} + {s:.3f}" for n, (f, s) in split.items()) + ")")
    out = {"model": args.model, "runs": runs, "tokens": tokens, "quick": args.quick,
           "cpu_ms_per_chat_run": {str(t): round(sum(per_run[t][n] for n in CONTROL_PLANE), 2) for t in tokens},
           "fixed_ms": round(fixed, 2), "per_token_ms": round(per_token, 3),
           **{f"fixed_ms_{n}": round(f, 2) for n, (f, _) in split.items()},
           **{f"per_token_ms_{n}": round(s, 3) for n, (_, s) in split.items()},
           "loadavg": round(load[0], 2)}
    if "idle_ms_per_s" in res:
        idle = res["idle_ms_per_s"]
        print(f"idle, {args.idle:g} s: " + ", ".join(f"{n} {ms:.2f}" for n, ms in idle.items())
              + " ms of CPU a second (10 ms clock ticks)")
        out["idle_ms_per_s"] = {n: round(ms, 2) for n, ms in idle.items()}
    prof = res.get("profile")
    if prof:
        print(f"\nprofile of {prof['process']} alone on one core, {prof['tokens']}-token runs: "
              f"{prof['cpu_ms_per_run']:.2f} ms CPU a run, {prof['ms']:.2f} ms of samples a run ({prof['file']})")
        print("  inclusive ms a run:")
        for name, ms in prof["inclusive"]:
            print(f"    {ms:6.2f}  {name}")
        print("  self ms a run:")
        for name, ms in prof["self"][:20]:
            print(f"    {ms:6.2f}  {name}")
        out["profile"] = {"process": prof["process"], "cpu_ms_per_run": round(prof["cpu_ms_per_run"], 2),
                          "file": prof["file"]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
