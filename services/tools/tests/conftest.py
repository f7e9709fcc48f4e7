"""Fixtures of the tools tests: the real Postgres schema, a toolbox built as the service
builds it, and a small loopback HTTP API (a real FastAPI app under uvicorn, whose own
generated OpenAPI document is what the import tests consume)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from cryptography.fernet import Fernet
from fastapi import FastAPI, Header, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from loom_common.devstack import infra
from loom_common.ids import new_id
from loom_common.testing import migrated_pool
from loom_tools.settings import ToolsSettings
from loom_tools.toolbox import build_toolbox


class Item(BaseModel):
    name: str
    price: float


def make_api() -> FastAPI:
    app = FastAPI(title="Loopback shop", version="1.0.0")

    @app.get("/items/{item_id}", operation_id="get_item", summary="Fetch one item")
    async def get_item(item_id: int, verbose: bool = False, authorization: str | None = Header(None)):
        if authorization != "Bearer shop-token-123":
            return Response(status_code=401, content='{"detail": "bad token"}', media_type="application/json")
        return {"id": item_id, "name": f"item-{item_id}", "verbose": verbose}

    @app.post("/items", operation_id="create_item", summary="Create an item")
    async def create_item(item: Item, x_api_key: str | None = Header(None)):
        if x_api_key != "shop-key-456":
            return Response(status_code=403, content='{"detail": "bad key"}', media_type="application/json")
        return {"created": item.model_dump()}

    @app.get("/echo-headers", operation_id="echo_headers")
    async def echo_headers(request: Request):
        # A careless API that reflects the caller's headers (credentials included).
        return {"headers": dict(request.headers)}

    @app.get("/redirect", operation_id="redirect")
    async def redirect(to: str):
        return RedirectResponse(to, status_code=302)

    @app.get("/big", operation_id="big")
    async def big(n: int = 10_000):
        return Response(b"x" * n, media_type="text/plain")

    @app.get("/slow", operation_id="slow")
    async def slow(s: float = 5.0):
        await asyncio.sleep(s)
        return {"slept": s}

    return app


class LoopbackServer:
    def __init__(self, app: FastAPI) -> None:
        self.port = infra.free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        infra.wait_until(lambda: self.server.started, 15, "loopback API")
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def api_server() -> Iterator[LoopbackServer]:
    with LoopbackServer(make_api()) as srv:
        yield srv


@pytest.fixture(scope="session")
def other_api_server() -> Iterator[LoopbackServer]:
    """The same API on another port: another origin, for tests of cross-origin redirects."""
    with LoopbackServer(make_api()) as srv:
        yield srv


@pytest.fixture
async def pool(database_url: str):
    async with migrated_pool(database_url, "tools", "loom_tools.migrations", min_size=1, max_size=4) as p:
        yield p


@pytest.fixture
def tenant() -> str:
    return f"t-{new_id()}"


@pytest.fixture
def settings_factory(tmp_path):
    def make(**overrides) -> ToolsSettings:
        # A busy loop must meet the CPU limit before the wall-clock one even when a loaded box gives
        # it a few percent of a core; a test that wants the wall limit passes a short timeout_s.
        values = {"home": tmp_path / "home", "secret_key": Fernet.generate_key().decode(),
                  "sqlite_roots": str(tmp_path), "sandbox_cpu_s": 1, "sandbox_wall_s": 30.0,
                  "http_timeout_s": 5.0, **overrides}
        return ToolsSettings(**values)
    return make


@pytest.fixture
async def toolbox_factory(settings_factory, pool):
    built = []

    def make(**overrides):
        built.append(build_toolbox(settings_factory(**overrides), pool))
        return built[-1]
    yield make
    for box in built:
        await box.close()

