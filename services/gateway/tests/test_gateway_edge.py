"""The gateway's one ASGI layer (api/middleware.py `Edge`) over a small Starlette app: the body
limit (by Content-Length, and by counting a body sent without one; uploads get theirs), the
security headers, Server-Timing from the request's marks, and the request metrics by route
template, the 413s included."""

from __future__ import annotations

import uuid

import httpx
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from loom_gateway.api.middleware import Edge
from loom_gateway.api.timing import mark


async def echo(request: Request) -> Response:
    body = await request.body()
    mark(request, "auth")
    return JSONResponse({"size": len(body)})


async def cached(request: Request) -> Response:
    return Response("x", headers={"cache-control": "max-age=60"})


def _client(service: str, scheme: str = "http") -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/v1/items/{id}", echo, methods=["POST"]),
                            Route("/files/upload", echo, methods=["POST"]), Route("/docs", cached)],
                    middleware=[Middleware(Edge, service=service, max_bytes=100, upload_paths=("/files/upload",),
                                           upload_max_bytes=1000)])  # as app.py adds it: inside Starlette's stack
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"{scheme}://gw")


def _count(service: str, route: str, status: str) -> float:
    return REGISTRY.get_sample_value("loom_http_requests_total", {"service": service, "method": "POST",
                                                                  "route": route, "status": status}) or 0.0


async def test_a_body_over_the_limit_is_refused_whether_or_not_it_says_its_length() -> None:
    service = f"edge-{uuid.uuid4().hex[:6]}"
    async with _client(service) as c:
        assert (await c.post("/v1/items/1", content=b"x" * 100)).json() == {"size": 100}
        said = await c.post("/v1/items/1", content=b"x" * 101)
        assert said.status_code == 413 and said.json()["code"] == "request_too_large"

        async def chunks():  # no Content-Length: counted as it comes
            for _ in range(3):
                yield b"x" * 40

        counted = await c.post("/v1/items/2", content=chunks())
        assert counted.status_code == 413 and counted.json()["code"] == "request_too_large"
        assert (await c.post("/files/upload", content=b"x" * 900)).json() == {"size": 900}  # the upload limit
    assert _count(service, "/v1/items/{id}", "200") == 1
    assert _count(service, "/v1/items/{id}", "413") == 1      # refused while the handler read it
    assert _count(service, "/files/upload", "200") == 1


async def test_every_answer_carries_the_security_headers_and_its_server_timing() -> None:
    async with _client(f"edge-{uuid.uuid4().hex[:6]}", scheme="https") as c:
        r = await c.post("/v1/items/1", content=b"{}")
        docs = await c.get("/docs")
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer" and r.headers["cache-control"] == "no-store"
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert r.headers["strict-transport-security"].startswith("max-age=")
    assert r.headers["server-timing"].startswith("auth;dur=")
    assert "content-security-policy" not in docs.headers and docs.headers["cache-control"] == "max-age=60"
    assert "server-timing" not in docs.headers  # nothing marked
