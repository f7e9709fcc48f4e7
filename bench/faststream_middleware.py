"""What FastStream's per-message middlewares cost: CPU per message published and consumed over
a real NATS (embedded nats-server), one process publishing to itself, with the broker built as
loom_common.runtime builds a service's, one middleware at a time.

Variants (each run N messages, rounds interleaved, medians of CPU time per message):
- bare: no middleware, FastStream's logger off;
- logger: Loom's logger settings (logger `faststream` at DEBUG, the service's level INFO);
- otel: NatsTelemetryMiddleware on an SDK tracer provider without exporter (what a service has
  when no OTLP endpoint is set: spans are made and dropped);
- otel_unsampled: the same with a ParentBased(ALWAYS_OFF) sampler: trace ids still made and
  propagated (logs keep them), spans not recorded (a cheaper default without an exporter);
- prometheus: NatsPrometheusMiddleware;
- all: logger + otel + prometheus, as runtime.py builds a broker today.

    .venv/bin/python bench/faststream_middleware.py --quick

The last line printed is one JSON object: microseconds of CPU per message (publish + consume)
for each variant and each one's cost over `bare`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from faststream.nats import NatsBroker
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.nats.prometheus import NatsPrometheusMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from prometheus_client import CollectorRegistry

from loom_common.devstack import infra

VARIANTS = ("bare", "logger", "otel", "otel_unsampled", "prometheus", "all")


def broker_for(variant: str, url: str) -> NatsBroker:
    middlewares = []
    if variant in ("otel", "all"):
        middlewares.append(NatsTelemetryMiddleware(tracer_provider=TracerProvider()))
    if variant == "otel_unsampled":
        middlewares.append(NatsTelemetryMiddleware(tracer_provider=TracerProvider(sampler=ParentBased(ALWAYS_OFF))))
    if variant in ("prometheus", "all"):
        middlewares.append(NatsPrometheusMiddleware(registry=CollectorRegistry(), app_name="bench",
                                                    metrics_prefix="loom"))
    logged = variant in ("logger", "all")
    return NatsBroker(url, middlewares=middlewares, logger=logging.getLogger("faststream") if logged else None,
                      log_level=logging.DEBUG)


async def cpu_per_message(variant: str, url: str, n: int) -> float:
    """Microseconds of this process's CPU per message, publish and consume."""
    broker = broker_for(variant, url)
    subject = f"bench.mw.{variant}"
    got = 0
    done = asyncio.Event()

    @broker.subscriber(subject)
    async def handle(body: dict) -> None:
        nonlocal got
        got += 1
        if got == n:
            done.set()

    await broker.start()
    try:
        for _ in range(50):  # warm-up
            await broker.publish({"seq": -1, "text": "x" * 64}, subject)
        await asyncio.sleep(0.2)
        got, target = 0, n
        done.clear()
        t0 = time.process_time()
        for i in range(target):
            await broker.publish({"seq": i, "text": "x" * 64}, subject)
        await asyncio.wait_for(done.wait(), 120)
        return (time.process_time() - t0) / n * 1e6
    finally:
        await broker.stop()


async def main_async(n: int, rounds: int, url: str) -> dict[str, float]:
    runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(rounds):  # interleaved: machine noise hits every variant alike
        for variant in VARIANTS:
            runs[variant].append(await cpu_per_message(variant, url, n))
    return {v: statistics.median(xs) for v, xs in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)  # a service's level: DEBUG lines filtered
    n, rounds = (1000, 3) if args.quick else (3000, 5)
    with tempfile.TemporaryDirectory(prefix="loom-bench-mw-") as tmp:
        nats = infra.EmbeddedNats(Path(tmp) / "nats").start()
        try:
            try:
                import uvloop  # the services' loop (loom_common.runtime)
                runner = uvloop.run
            except ImportError:
                runner = asyncio.run
            us = runner(main_async(n, rounds, nats.url))
        finally:
            nats.stop()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"CPU per message, publish + consume, {n} messages x {rounds} rounds (medians; loadavg {load}):")
    for v in VARIANTS:
        print(f"  {v:<15} {us[v]:7.1f} us   over bare {us[v] - us['bare']:+7.1f} us")
    print(json.dumps({"us_per_message": {v: round(x, 1) for v, x in us.items()},
                      "us_over_bare": {v: round(x - us["bare"], 1) for v, x in us.items() if v != "bare"},
                      "messages": n, "rounds": rounds, "loadavg": load, "quick": args.quick}))


if __name__ == "__main__":
    main()
