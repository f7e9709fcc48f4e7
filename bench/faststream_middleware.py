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
- otel_propagate: a sketch of the other alternative proposed there: no span per message, the
  trace context carried through (extracted from the headers and made current on consume,
  injected on publish), so logs and the spans of the calls a handler makes stay in the trace;
- prometheus: NatsPrometheusMiddleware (per message: 3 counters, 2 histograms, a gauge up and
  down, each through prometheus_client's `labels()`);
- prometheus_slim: a sketch of the alternative proposed in docs/gateway.md, only the two series
  Loom's dashboard and alerts read (processed messages by handler and status, published
  messages by destination and status), label children cached;
- all: logger + otel + prometheus, as runtime.py built a broker before bus_telemetry;
- loom: logger + loom_common.bus_telemetry (TraceContext, message_counts), as runtime.py
  builds a broker now.

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
from typing import Any

from faststream import BaseMiddleware
from faststream.nats import NatsBroker
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.nats.prometheus import NatsPrometheusMiddleware
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from prometheus_client import CollectorRegistry, Counter

from loom_common.bus_telemetry import TraceContext, message_counts
from loom_common.devstack import infra

VARIANTS = ("bare", "logger", "otel", "otel_unsampled", "otel_propagate", "prometheus", "prometheus_slim", "all",
            "loom")


class PropagateOnly(BaseMiddleware):
    """The trace context through each message, without a span of its own."""

    async def consume_scope(self, call_next, msg):
        token = otel_context.attach(propagate.extract(msg.headers or {}))
        try:
            return await call_next(msg)
        finally:
            otel_context.detach(token)

    async def publish_scope(self, call_next, cmd):
        propagate.inject(cmd.headers)
        return await call_next(cmd)


class SlimCounts(BaseMiddleware):
    """Processed and published messages only, by the labels the dashboard and alerts use."""

    registry = CollectorRegistry()
    processed = Counter("loom_received_processed_messages", "Messages handled", ["handler", "status"],
                        registry=registry)
    published = Counter("loom_published_messages", "Messages published", ["destination", "status"], registry=registry)
    children: dict[tuple, Any] = {}

    @classmethod
    def count(cls, metric: Counter, *labels: str) -> None:
        child = cls.children.get((metric, *labels))
        if child is None:
            child = cls.children[(metric, *labels)] = metric.labels(*labels)
        child.inc()

    async def consume_scope(self, call_next, msg):
        handler = getattr(msg.raw_message, "subject", "")
        try:
            result = await call_next(msg)
        except Exception:
            self.count(self.processed, handler, "error")
            raise
        self.count(self.processed, handler, "acked")
        return result

    async def publish_scope(self, call_next, cmd):
        try:
            result = await call_next(cmd)
        except Exception:
            self.count(self.published, cmd.destination, "error")
            raise
        self.count(self.published, cmd.destination, "success")
        return result


def broker_for(variant: str, url: str) -> NatsBroker:
    middlewares = []
    if variant in ("otel", "all"):
        middlewares.append(NatsTelemetryMiddleware(tracer_provider=TracerProvider()))
    if variant == "otel_unsampled":
        middlewares.append(NatsTelemetryMiddleware(tracer_provider=TracerProvider(sampler=ParentBased(ALWAYS_OFF))))
    if variant == "otel_propagate":
        middlewares.append(PropagateOnly)
    if variant == "prometheus_slim":
        middlewares.append(SlimCounts)
    if variant in ("prometheus", "all"):
        middlewares.append(NatsPrometheusMiddleware(registry=CollectorRegistry(), app_name="bench",
                                                    metrics_prefix="loom"))
    if variant == "loom":
        middlewares += [TraceContext, message_counts("bench", CollectorRegistry())]
    logged = variant in ("logger", "all", "loom")
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
