"""MCP servers as tools: a real MCP server (the `mcp` SDK's MCPServer under uvicorn on loopback)
registered through the catalog, its tools listed and invoked through the executor with the
same audit, time and size limits and SSRF guard as HTTP tools; the credential never listed.

The loopback server is reachable only where a test opens it through the operator's private
targets; refused addresses are decided without any connection (IP literals, no DNS)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from mcp.server.mcpserver import MCPServer

from loom.tools.v1 import tools_pb2 as pb
from loom_common.devstack import infra
from loom_tools.api.grpc_service import _info
from loom_tools.domain.types import Call
from loom_tools.errors import InvalidArguments, SsrfBlocked

pytestmark = pytest.mark.integration

TOKEN = "mcp-secret-789"


def make_mcp_app():
    srv = MCPServer("loopback-mcp")

    @srv.tool()
    def add(a: int, b: int) -> int:
        """Add two whole numbers."""
        return a + b

    @srv.tool(name="shout out")  # a name our registry must make safe
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()

    @srv.tool()
    def big(n: int) -> str:
        """A long text."""
        return "x" * n

    @srv.tool()
    async def slow(s: float) -> str:
        """Answers after s seconds."""
        await asyncio.sleep(s)
        return "late"

    @srv.tool()
    def broken() -> str:
        """Always fails."""
        raise ValueError("the tool broke")

    app = srv.streamable_http_app(stateless_http=True, json_response=True)

    async def bearer_only(scope, receive, send):  # the server's own auth: a bearer token
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != f"Bearer {TOKEN}".encode():
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)
    # lifespan events must still reach the app (the SDK's session manager starts there)
    return bearer_only


class Served:
    """An ASGI app under uvicorn on a free loopback port, in a thread."""

    def __init__(self, app) -> None:
        self.port = infra.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        infra.wait_until(lambda: self.server.started, 15, "loopback MCP server")

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[Served]:
    srv = Served(make_mcp_app())
    yield srv
    srv.close()


def _creds() -> dict:
    return {"type": "bearer", "token": TOKEN}


async def test_tools_mcp_server_registered_listed_and_called(toolbox_factory, tenant, mcp_server, pool):
    box = toolbox_factory(allow_private_targets=f"127.0.0.1:{mcp_server.port}", http_max_response_bytes=64_000)
    listed = await box.catalog.add_mcp_server(tenant, name="calc", url=f"{mcp_server.url}/mcp",
                                              credentials=_creds())
    names = sorted(s.name for s in listed)
    assert names == ["calc.add", "calc.big", "calc.broken", "calc.shout_out", "calc.slow"]
    assert all(s.kind == "mcp" and s.has_credentials and s.credentials is None for s in listed)
    add = next(s for s in listed if s.name == "calc.add")
    assert add.parameters["properties"]["a"]["type"] == "integer" and "Add two" in add.description

    # What the listing RPC sends never carries the token.
    infos = [_info(s) for s in await box.executor.list(tenant, "mcp")]
    assert {i.name for i in infos} == set(names) and all(i.has_credentials for i in infos)
    assert TOKEN not in str([pb.ToolInfo.SerializeToString(i) for i in infos])

    out = await box.executor.invoke(Call(tenant, "calc.add", {"a": 2, "b": 3}, run_id="r1", node_id="n1"))
    assert out.ok and out.result == {"result": 5}, out
    out = await box.executor.invoke(Call(tenant, "calc.shout_out", {"text": "hi"}))
    assert out.ok and out.result == {"result": "HI"}
    # Arguments are checked against the server's schema before any call.
    out = await box.executor.invoke(Call(tenant, "calc.add", {"a": "two", "b": 3}))
    assert not out.ok and out.error_code == "invalid_arguments"
    # A tool's own failure (isError) is the server's refusal, typed.
    out = await box.executor.invoke(Call(tenant, "calc.broken", {}))
    assert not out.ok and out.error_code == "upstream_error" and "broke" in out.error_message
    # The size bound: a response past http_max_response_bytes is cut, not buffered.
    out = await box.executor.invoke(Call(tenant, "calc.big", {"n": 200_000}))
    assert not out.ok and out.error_code == "response_too_large", out
    # A server that hangs: the call's deadline ends the session.
    out = await box.executor.invoke(Call(tenant, "calc.slow", {"s": 30}, timeout_s=1.0))
    assert not out.ok and out.error_code == "timeout", out
    # Every call is audited like an HTTP tool's.
    rows = await pool.fetch("SELECT tool, outcome, error_code, run_id FROM invocations WHERE tenant_id = $1 "
                            "ORDER BY id", tenant)
    assert [(r["tool"], r["outcome"]) for r in rows][:2] == [("calc.add", "ok"), ("calc.shout_out", "ok")]
    assert rows[0]["run_id"] == "r1" and rows[-1]["error_code"] == "timeout"

    # Re-listing with replace keeps the set in step; delete by prefix removes them all.
    again = await box.catalog.add_mcp_server(tenant, name="calc", url=f"{mcp_server.url}/mcp",
                                             credentials=_creds(), replace=True)
    assert len(again) == 5
    assert await box.catalog.delete(tenant, "calc.*") == 5


async def test_tools_mcp_wrong_credential_is_refused_without_registering(toolbox_factory, tenant, mcp_server):
    box = toolbox_factory(allow_private_targets=f"127.0.0.1:{mcp_server.port}")
    with pytest.raises(Exception) as err:
        await box.catalog.add_mcp_server(tenant, name="calc", url=f"{mcp_server.url}/mcp",
                                         credentials={"type": "bearer", "token": "wrong-token"})
    assert getattr(err.value, "code", "") == "upstream_error" and err.value.field == "url"
    assert "HTTP 401" in err.value.message
    assert "wrong-token" not in str(err.value)
    assert [s for s in await box.executor.list(tenant, "mcp")] == []


@pytest.mark.parametrize("url", ["http://10.1.2.3/mcp", "http://169.254.169.254/mcp", "http://[::1]:9/mcp",
                                 "http://127.0.0.1:9/mcp"])
async def test_tools_mcp_private_address_refused_before_connecting(toolbox_factory, tenant, url):
    """Not on the operator's list: refused by the guard's decision (IP literals: no DNS, no connection)."""
    box = toolbox_factory()
    with pytest.raises(SsrfBlocked) as err:
        await box.catalog.add_mcp_server(tenant, name="evil", url=url)
    assert err.value.field == "url" and "LOOM_TOOLS_ALLOW_PRIVATE_TARGETS" in err.value.message


async def test_tools_mcp_registered_tool_refused_once_the_operator_closes_the_target(
        toolbox_factory, tenant, mcp_server):
    opened = toolbox_factory(allow_private_targets=f"127.0.0.1:{mcp_server.port}")
    await opened.catalog.add_mcp_server(tenant, name="calc", url=f"{mcp_server.url}/mcp", credentials=_creds())
    closed = toolbox_factory()  # same registry, the allow-list entry removed
    out = await closed.executor.invoke(Call(tenant, "calc.add", {"a": 1, "b": 1}))
    assert not out.ok and out.error_code == "ssrf_blocked" and out.error_field == "url"


@pytest.mark.parametrize(("kw", "field"), [
    ({"name": "bad name!", "url": "https://mcp.example.com/mcp"}, "name"),
    ({"name": "time", "url": "https://mcp.example.com/mcp"}, "name"),
    ({"name": "ok", "url": "ftp://mcp.example.com/"}, "url"),
    ({"name": "ok", "url": "https://mcp.example.com/mcp", "credentials": {"type": "basic", "user": "x"}},
     "credentials"),
])
async def test_tools_mcp_bad_registration_names_the_field(toolbox_factory, tenant, kw, field):
    with pytest.raises(InvalidArguments) as err:
        await toolbox_factory().catalog.add_mcp_server(tenant, **kw)
    assert err.value.field == field
    assert json.dumps(kw.get("credentials", {})) not in err.value.message or not kw.get("credentials")
