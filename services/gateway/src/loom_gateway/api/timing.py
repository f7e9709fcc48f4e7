"""Where a request's time goes inside the gateway, told to the caller and to Prometheus.

The gateway's ASGI layer (api/middleware.py `Edge`) gives each HTTP request a `Timing`; handlers
mark the end of each stage (`mark(request, "auth")`), and the response carries them as a W3C
`Server-Timing` header in milliseconds (`auth;dur=1.21, app;dur=0.02, start;dur=2.10`).
A streaming run's headers leave right after `runs.requested` was published, so the header
covers exactly the gateway's work before the orchestrator is asked.

What follows the publish is measured per run event, as histograms on /metrics:

    loom_gateway_run_first_event_seconds   publish -> the run's first event read off the bus
    loom_gateway_run_event_lag_seconds     event stamped by its producer -> read off the bus
    loom_gateway_sse_relay_seconds         event read off the bus -> its SSE frame written
"""

from __future__ import annotations

import time

from prometheus_client import Histogram
from starlette.requests import Request

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

FIRST_EVENT = Histogram("loom_gateway_run_first_event_seconds",
                        "From publishing runs.requested to the run's first event read off the bus", buckets=_BUCKETS)
EVENT_LAG = Histogram("loom_gateway_run_event_lag_seconds",
                      "From a run event's occurred_at (its producer's clock) to the gateway reading it",
                      buckets=_BUCKETS)
RELAY = Histogram("loom_gateway_sse_relay_seconds", "From reading a run event off the bus to its SSE frame written",
                  buckets=_BUCKETS)


class Timing:
    """Stage durations of one request, each from the previous mark (the first from arrival)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.stages: list[tuple[str, float]] = []

    def mark(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages.append((stage, now - self.last))
        self.last = now

    def header(self) -> bytes:
        return ", ".join(f"{name};dur={seconds * 1000:.2f}" for name, seconds in self.stages).encode()


def mark(request: Request, stage: str) -> None:
    timing = getattr(request.state, "timing", None)
    if timing is not None:
        timing.mark(stage)

