"""The gateway's one ASGI layer around its app (`Edge`), doing in one `send` wrapper what four
layers did with one each (a profile of a cached GET found the request passing 11 ASGI layers):

- the body limit: a request body over the limit is refused with 413 (by Content-Length up
  front, and by counting a body sent without one), before any handler reads it;
- security headers: nosniff, frame denial, referrer policy, HSTS on https, no caching of API
  answers; the OpenAPI docs page keeps working;
- `Server-Timing`: the request's `Timing` (api/timing.py), its stages as a response header;
- request metrics: `loom_http_requests_total` and `loom_http_request_duration_seconds` by
  route template (loom_common.health.RequestMetrics; the runtime's own layer is off for the
  gateway's API app).
CORS is Starlette's own middleware, inside this one, configured from settings in app.py.
"""

from __future__ import annotations

import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loom_common.health import RequestMetrics
from loom_gateway.api.timing import Timing


def _too_large(limit: int) -> tuple[dict, bytes]:
    body = json.dumps({"code": "request_too_large", "message": f"Request body is larger than {limit} bytes.",
                       "status": 413}).encode()
    start = {"type": "http.response.start", "status": 413,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
    return start, body


class _TooLarge(Exception):
    pass


SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"), (b"cross-origin-opener-policy", b"same-origin"),
                    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()")]
_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_NO_STORE = (b"cache-control", b"no-store")


class Edge:
    def __init__(self, app: ASGIApp, *, service: str, max_bytes: int, upload_paths: tuple[str, ...] = (),
                 upload_max_bytes: int = 0):
        self.app = app
        self.metrics = RequestMetrics(service)
        self.max_bytes = max_bytes
        self.upload_paths = upload_paths
        self.upload_max_bytes = upload_max_bytes

    def _limit(self, scope: Scope) -> int:
        if self.upload_max_bytes and scope["path"].endswith(self.upload_paths):
            return max(self.max_bytes, self.upload_max_bytes + 64 * 1024)  # multipart overhead on top of the file
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        length = next((v for k, v in scope.get("headers") or () if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > limit:
            await _refuse(send, limit)
            return
        if length is None:  # a body without a length (chunked) is counted as it comes
            receive = _counted(receive, limit)
        started = time.perf_counter()
        timing = Timing()
        scope.setdefault("state", {})["timing"] = timing
        status, responded = 500, False

        async def edge_send(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message = {**message, "headers": self._headers(scope, message, timing)}
                self.metrics.responded(scope, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, edge_send)
        except _TooLarge:
            status = 413
            if not responded:
                await _refuse(send, limit)
        finally:
            self.metrics.finished(scope, status)

    @staticmethod
    def _headers(scope: Scope, message: Message, timing: Timing) -> list[tuple[bytes, bytes]]:
        headers = list(message.get("headers") or [])
        names = {k.lower() for k, _ in headers}
        headers += [h for h in SECURITY_HEADERS if h[0] not in names]
        if scope["path"] not in ("/docs", "/redoc"):
            headers.append(_CSP)
        if b"cache-control" not in names:
            headers.append(_NO_STORE)
        if scope.get("scheme") == "https":
            headers.append(_HSTS)
        if timing.stages:
            headers.append((b"server-timing", timing.header()))
        return headers


async def _refuse(send: Send, limit: int) -> None:
    start, body = _too_large(limit)
    await send(start)
    await send({"type": "http.response.body", "body": body})


def _counted(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
        return message

    return counted
