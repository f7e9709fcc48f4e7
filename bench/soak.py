"""Soak: a steady load of streaming chats for half an hour, every process's resident memory
sampled, and how much each grew between minute 5 (warmed up: pools filled, caches and
allocator arenas at their working size) and minute 30. Target: < 5 % for every process.
Each process tree is measured three ways (benchkit.memory_mb): RSS, PSS (shared pages split
among their sharers) and USS (its private pages). Postgres' RSS counts shared buffers once per
backend that touched them, so it rises as backends touch more of them; its USS is what a leak in
its backends would grow.

    nice -n 19 .venv/bin/python bench/soak.py            # 30 minutes (+ ~1 minute of start-up)
    nice -n 19 .venv/bin/python bench/soak.py --quick    # windows at 0:30 and 2:00

Its own stack (embedded NATS and Postgres, every service a process, bench/load.py's), the chat
model the inference service's fake route by default (the control plane is what a leak would be
in; `--model bundled` for the real one). `--users` clients each hold one streaming chat after
another. RSS is each service's process tree (Postgres: the postmaster and its backends, whose
shared buffers count once per backend that touched them, so its figure overstates its growth
rather than hides any). Each window's figure is the median of its samples in the minute
before the mark (the quick mode: 15 s), so one GC or one burst does not decide it.

Not part of `make test`. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from benchkit import PROMPT, memory_mb
from load import BUNDLED_CHAT, FAKE_CHAT, Target, own_stack, prepare, stack_env, warm_up


async def _user(url: str, key: str, n: int, stop: threading.Event, counts: Counter) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        while not stop.is_set():
            try:
                async with client.stream("POST", "/v1/chat-messages", headers={"Authorization": f"Bearer {key}"},
                                         json={"inputs": {}, "query": PROMPT, "user": f"soak-{n}",
                                               "response_mode": "streaming"}) as r:
                    r.raise_for_status()
                    ended = False
                    async for line in r.aiter_lines():
                        if line.startswith("data: ") and json.loads(line[6:]).get("event") == "message_end":
                            ended = True
                    counts["ok" if ended else "no_end"] += 1
            except Exception as exc:  # every failure counts, whatever it is
                counts[type(exc).__name__] += 1


def load_thread(url: str, key: str, users: int, stop: threading.Event, counts: Counter) -> threading.Thread:
    async def main() -> None:
        await asyncio.gather(*(_user(url, key, n, stop, counts) for n in range(users)))

    t = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    t.start()
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="windows at 0:30 and 2:00 instead of 5:00 and 30:00")
    ap.add_argument("--users", type=int, default=16, help="concurrent streaming chats")
    ap.add_argument("--model", choices=("fake", "bundled"), default="fake")
    ap.add_argument("--sample-every", type=float, help="seconds between RSS samples (default 10, quick 3)")
    args = ap.parse_args()
    start_mark, end_mark, window = (30.0, 120.0, 15.0) if args.quick else (300.0, 1800.0, 60.0)
    every = args.sample_every or (3.0 if args.quick else 10.0)
    fake = args.model == "fake"
    root = Path(tempfile.mkdtemp(prefix="loom-bench-soak-"))
    target = Target(url="", weights={"chat": 1}, users=args.users, chat_model=FAKE_CHAT if fake else BUNDLED_CHAT,
                    chat_tokens=32 if fake else 8)
    stack, owned, email, password, pids = own_stack(root, stack_env(root, args.users, target.chat_model, 0.05))
    ok = False
    samples: list[tuple[float, dict[str, dict[str, float]]]] = []
    counts: Counter = Counter()
    try:
        target.url = stack.gateway_url
        prepare(target, email, password)
        warm_up(target)
        stop = threading.Event()
        loader = load_thread(target.url, target.chat_key, args.users, stop, counts)
        t0 = time.monotonic()
        next_print = 0.0
        while (elapsed := time.monotonic() - t0) < end_mark:
            samples.append((elapsed, memory_mb(pids)))
            if elapsed >= next_print:
                total = sum(m["pss"] for m in samples[-1][1].values())
                print(f"{elapsed:6.0f} s  chats {dict(counts)}  PSS total {total:.0f} MiB", file=sys.stderr)
                next_print += 60 if not args.quick else 15
            time.sleep(every)
        stop.set()
        loader.join(150)
        ok = True
    finally:
        owned[0].stop()
        owned[1].stop()
        owned[2].stop()
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"logs kept in {root / 'home'}", file=sys.stderr)

    def at(mark: float, kind: str) -> dict[str, float]:
        inside = [s for t, s in samples if mark - window <= t <= mark]
        return {name: statistics.median(s[name][kind] for s in inside) for name in pids}

    first = {kind: at(start_mark, kind) for kind in ("rss", "pss", "uss")}
    last = {kind: at(end_mark, kind) for kind in ("rss", "pss", "uss")}
    growth = {kind: {name: round(100 * (last[kind][name] - first[kind][name]) / first[kind][name], 2)
                     for name in pids} for kind in first}
    marks = f"{int(start_mark)} s -> {int(end_mark)} s"
    print(f"{'process':<14}{'RSS ' + marks:>26}{'growth':>9}{'PSS ' + marks:>26}{'growth':>9}"
          f"{'USS ' + marks:>26}{'growth':>9}")
    for name in pids:
        print(f"{name:<14}" + "".join(f"{first[k][name]:>11.1f} -> {last[k][name]:>7.1f} MiB{growth[k][name]:>8.2f} %"
                                      for k in ("rss", "pss", "uss")))
    errors = sum(v for k, v in counts.items() if k != "ok")
    print(f"chats: {counts['ok']} answered, {errors} failed ({dict(counts)}); {args.users} users, "
          f"model {target.chat_model}")
    print(json.dumps({"quick": args.quick, "users": args.users, "model": target.chat_model,
                      "window_s": [start_mark, end_mark], "mb_start": first, "mb_end": last,
                      "rss_growth_pct": growth["rss"], "pss_growth_pct": growth["pss"],
                      "uss_growth_pct": growth["uss"], "max_rss_growth_pct": max(growth["rss"].values()),
                      "max_pss_growth_pct": max(growth["pss"].values()),
                      "max_uss_growth_pct": max(growth["uss"].values()),
                      "chats_ok": counts["ok"], "chats_failed": errors}))


if __name__ == "__main__":
    main()
