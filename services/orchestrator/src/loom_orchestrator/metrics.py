"""Prometheus metrics and tracing of runs and nodes (served on /metrics by the runtime).

    loom_orchestrator_runs_started_total            runs taken from the queue (redeliveries included)
    loom_orchestrator_runs_finished_total{status}   succeeded | partial-succeeded | failed | stopped
    loom_orchestrator_runs_failed_total             runs that ended failed
    loom_orchestrator_runs_active                   runs executing in this worker
    loom_orchestrator_node_seconds{node_type}       node latency per attempt, by type
    loom_orchestrator_queue_backlog                 runs.requested messages pending or unacked
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

RUNS_STARTED = Counter("loom_orchestrator_runs_started", "Runs taken from the queue")
RUNS_FINISHED = Counter("loom_orchestrator_runs_finished", "Runs that ended", ["status"])
RUNS_FAILED = Counter("loom_orchestrator_runs_failed", "Runs that ended failed")
RUNS_ACTIVE = Gauge("loom_orchestrator_runs_active", "Runs executing in this worker")
NODE_SECONDS = Histogram("loom_orchestrator_node_seconds", "Node latency per attempt", ["node_type"],
                         buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300))
QUEUE_BACKLOG = Gauge("loom_orchestrator_queue_backlog", "runs.requested messages pending or unacknowledged")

_tracer = trace.get_tracer("loom.orchestrator")


class Observer:
    """The engine's observer: a span and a latency sample per node attempt."""

    @contextlib.contextmanager
    def node(self, node_type: str, node_id: str) -> Iterator[None]:
        t0 = time.perf_counter()
        with _tracer.start_as_current_span(f"node {node_type}", attributes={"loom.node_id": node_id,
                                                                            "loom.node_type": node_type}):
            try:
                yield
            finally:
                NODE_SECONDS.labels(node_type).observe(time.perf_counter() - t0)


def run_span(run_id: str, app_id: str, mode: str):
    return _tracer.start_as_current_span("run", attributes={"loom.run_id": run_id, "loom.app_id": app_id,
                                                           "loom.app_mode": mode})
