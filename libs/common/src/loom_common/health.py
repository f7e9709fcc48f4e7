"""The admin endpoints every service serves: /healthz, /readyz, /metrics.

- /healthz: the process is alive (always 200 while the event loop runs).
- /readyz: every registered check passes (NATS connected, database answers, model loaded...);
  503 with the failing checks named otherwise, and 503 while the service is draining.
- /metrics: the Prometheus text format of the default registry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter("loom_http_requests_total", "HTTP requests served",
                        ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram("loom_http_request_duration_seconds", "HTTP request latency (to response start)",
                         ["service", "method", "route"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

Check = Callable[[], Awaitable[bool]]


class Readiness:
    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self.draining = False

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def report(self, timeout_s: float = 2.0) -> dict[str, bool]:
        async def run(check: Check) -> bool:
            try:
                return bool(await asyncio.wait_for(check(), timeout_s))
            except Exception:
                return False

        names = list(self._checks)
        results = await asyncio.gather(*(run(self._checks[n]) for n in names))
        return dict(zip(names, results, strict=True))


def admin_router(service: str, readiness: Readiness) -> APIRouter:
    router = APIRouter(tags=["admin"])

    @router.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "service": service}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = await readiness.report()
        ready = all(checks.values()) and not readiness.draining
        return JSONResponse({"ready": ready, "service": service, "draining": readiness.draining,
                             "checks": checks}, status_code=200 if ready else 503)

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


class RequestMetrics:
    """A service's two HTTP series, their label children cached (`labels()` takes a lock and
    builds a key on every call): for an ASGI layer that counts requests itself."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._latency: dict[tuple[str, str], Histogram] = {}
        self._requests: dict[tuple[str, str, int], Counter] = {}

    def responded(self, scope: Scope, seconds: float) -> None:
        """The response started `seconds` after the request came in."""
        key = (scope["method"], getattr(scope.get("route"), "path", "unmatched"))
        child = self._latency.get(key)
        if child is None:
            child = self._latency[key] = HTTP_LATENCY.labels(self.service, *key)
        child.observe(seconds)

    def finished(self, scope: Scope, status: int) -> None:
        key = (scope["method"], getattr(scope.get("route"), "path", "unmatched"), status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = HTTP_REQUESTS.labels(self.service, key[0], key[1], str(status))
        child.inc()


def instrument_http(app: FastAPI, service: str) -> None:
    """Count and time every request by its route template (not the raw path: bounded labels).

    A plain ASGI middleware, not `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs
    every request in an extra task and pipes a streaming body (SSE) through a memory stream,
    which cost the gateway 10-17 % of its CPU per request in a profile."""
    app.add_middleware(_RequestMetrics, service=service)


class _RequestMetrics:
    def __init__(self, app: ASGIApp, service: str):
        self.app = app
        self.metrics = RequestMetrics(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.metrics.responded(scope, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            self.metrics.finished(scope, status)
