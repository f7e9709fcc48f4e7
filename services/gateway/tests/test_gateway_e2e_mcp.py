"""MCP both ways on the real stack (inference, rag, tools, orchestrator, gateway as processes;
real NATS and Postgres), as issue 20 asks:

- a real MCP server, built with the `mcp` SDK in this test (MCPServer under uvicorn on a free
  loopback port, behind a bearer token), is registered through the console API, its tools
  listed, tested and called by an AGENT node; the token is never in any response;
- that published agent app is then listed and called as an MCP tool by the SDK's client at the
  gateway's /v1/mcp, with the app's key;
- an MCP server on a private address the operator did not allow is refused (400 naming `url`,
  the guard's decision on an IP literal: no connection is attempted);
- a workflow's TOOL node names an MCP tool by its id, and the published workflow is an MCP tool
  whose JSON schema is its start inputs.

The model is a SCRIPTED OpenAI-compatible server on loopback registered with the real inference
service (not a model): asked with tools and no tool result yet, it calls `calc.add`; given the
tool's result, it answers with it. The tools service may reach the MCP server's port only
because this stack's operator setting allows that one target (LOOM_TOOLS_ALLOW_PRIVATE_TARGETS).
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid

import asyncpg
import httpx2
import pytest
import uvicorn
from gateway_stack import start_stack
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer

from loom_common.db import _with_database
from loom_common.devstack import infra, nats_auth
from loom_common.testing import ScriptedChat
from loom_gateway.clients.inference import InferenceClient

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]

SCRIPTED = "scripted-mcp"
TOKEN = "mcp-e2e-secret-5150"


class McpServer:
    """A real MCP server (the SDK's MCPServer), streamable HTTP, bearer-token protected."""

    def __init__(self) -> None:
        srv = MCPServer("calculator")
        self.calls: list[tuple[int, int]] = []

        @srv.tool()
        def add(a: int, b: int) -> int:
            """Add two whole numbers."""
            self.calls.append((a, b))
            return a + b

        app = srv.streamable_http_app(stateless_http=True, json_response=True)

        async def guarded(scope, receive, send):
            if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != f"Bearer {TOKEN}".encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            await app(scope, receive, send)

        self.port = infra.free_port()
        self.server = uvicorn.Server(uvicorn.Config(guarded, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        infra.wait_until(lambda: self.server.started, 15, "MCP server")

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _adder_script(body: dict) -> tuple[list[dict], str]:
    """A tool call while none was answered, then the result (OpenAI-compatible, scripted)."""
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    names = [t["function"]["name"] for t in body.get("tools") or []]
    if results or "calc.add" not in names:
        return [{"content": f"The sum is {results[-1] if results else '?'}."}], "stop"
    call = {"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "calc.add", "arguments": json.dumps({"a": 20, "b": 22})}}
    return [{"tool_calls": [call]}], "tool_calls"


@pytest.fixture(scope="module")
def mcp_stack(database_url, tmp_path_factory, service_role_passwords):
    """Its own stack: the tools service is told it may reach this test's MCP server (one port)."""
    mcp, model = McpServer(), ScriptedChat(_adder_script, model=SCRIPTED)
    home = tmp_path_factory.mktemp("mcp-stack")
    nats = infra.EmbeddedNats(home / "nats").start()
    db = _with_database(database_url, f"mcp_{uuid.uuid4().hex[:10]}")
    stack = None
    try:
        stack = start_stack(nats.url, db, home, role_passwords=service_role_passwords,
                            nats_users=nats_auth.load_users(infra.nats_secrets_dir(nats.store_dir)),
                            service_env={"LOOM_TOOLS_ALLOW_PRIVATE_TARGETS": f"127.0.0.1:{mcp.port}"})
        yield stack, mcp, model
    finally:
        if stack is not None:
            stack.stop()
        nats.stop()
        mcp.close()
        model.close()


async def _register_model(addr: str, workspace_id: str, port: int) -> None:
    client = InferenceClient(addr, timeout_s=10.0)
    try:
        await client.register_remote(workspace_id, SCRIPTED, "openai", f"http://127.0.0.1:{port}/v1", None)
    finally:
        await client.close()


async def _invocations(stack, workspace_id: str) -> list[dict]:
    tools = next(p for p in stack.procs if p.name == "tools")
    conn = await asyncpg.connect(tools.env["LOOM_DATABASE_URL"])
    try:
        rows = await conn.fetch("SELECT tool, run_id, outcome FROM tools.invocations WHERE tenant_id = $1 "
                                "ORDER BY id", workspace_id)
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def _over_mcp(gateway_url: str, key: str):
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=120) as http, \
            Client(streamable_http_client(f"{gateway_url}/v1/mcp", http_client=http)) as client:
        listed = (await client.list_tools()).tools
        return listed, await client.call_tool(listed[0].name, {"query": "What is 20 + 22?"})


def test_mcp_server_registered_through_the_console_is_called_by_an_agent_and_the_app_served_over_mcp(mcp_stack):
    stack, mcp, model = mcp_stack
    h, seen = stack.console, []
    with stack.http() as http:
        def call(method: str, path: str, **kw):
            r = http.request(method, stack.ws(path), headers=h, timeout=60, **kw)
            seen.append(r.text)
            return r

        asyncio.run(_register_model(stack.inference_addr, stack.workspace_id, model.port))
        r = call("POST", "/tools/mcp", json={"name": "calc", "url": f"http://127.0.0.1:{mcp.port}/mcp",
                                             "credentials": {"type": "bearer", "token": TOKEN}})
        assert r.status_code == 201, r.text
        assert [t["id"] for t in r.json()["data"]] == ["calc.add"]
        listed = call("GET", "/tools", params={"kind": "mcp"}).json()["data"]
        assert [(t["id"], t["kind"], t["has_credentials"]) for t in listed] == [("calc.add", "mcp", True)]
        one = call("GET", "/tools/calc.add").json()
        assert one["parameters"]["required"] == ["a", "b"] and one["provider"] == "calc"
        tested = call("POST", "/tools/calc.add/test", json={"arguments": {"a": 1, "b": 2}}).json()
        assert tested["ok"] and tested["result"] == {"result": 3}, tested
        assert call("GET", "/tools/calc.nothing").status_code == 404
        # The operator allowed one loopback port: a private address it did not name is refused.
        r = call("POST", "/tools/mcp", json={"name": "evil", "url": "http://10.20.30.40/mcp"})
        assert r.status_code == 400 and r.json()["field"] == "url" and r.json()["code"] == "ssrf_blocked", r.text

        # An agent app whose agent node picks the workspace tool by its id.
        app_id = call("POST", "/apps", json={"name": "calc agent", "mode": "agent"}).json()["id"]
        draft = call("GET", f"/apps/{app_id}/draft").json()["dsl"]
        agent = next(n for n in draft["workflow"]["graph"]["nodes"] if n["data"]["type"] == "agent")
        agent["data"]["model"]["name"] = SCRIPTED
        agent["data"]["tools"] = [{"tool_name": "calc.add"}]
        assert call("PUT", f"/apps/{app_id}/draft", json={"dsl": draft}).is_success
        assert call("POST", f"/apps/{app_id}/publish").is_success
        key = call("POST", f"/apps/{app_id}/api-keys", json={"name": "e2e"}).json()["token"]

        r = http.post(f"{stack.gateway_url}/v1/chat-messages", headers={"Authorization": f"Bearer {key}"},
                      json={"query": "What is 20 + 22?", "user": "u1", "response_mode": "blocking"}, timeout=120)
        assert r.status_code == 200, r.text
        assert "42" in r.json()["answer"], r.json()
        assert mcp.calls[-1] == (20, 22)
        # The model was offered the MCP tool with the server's own schema.
        offered = next(t["function"] for t in model.requests[0]["tools"])
        assert offered["name"] == "calc.add" and offered["parameters"]["required"] == ["a", "b"]
        audit = asyncio.run(_invocations(stack, stack.workspace_id))
        assert [(a["tool"], a["outcome"]) for a in audit] == [("calc.add", "ok"), ("calc.add", "ok")]
        assert audit[-1]["run_id"] == r.json()["task_id"]

        # The same app, served as an MCP server by the gateway, called by the SDK's client.
        served, answer = asyncio.run(_over_mcp(stack.gateway_url, key))
        assert [t.name for t in served] == ["calc_agent"] and served[0].input_schema["required"] == ["query"]
        assert not answer.is_error and "42" in answer.content[0].text
        assert len(mcp.calls) == 3  # the console's test, the chat, the MCP call

        # The other kinds through the same routes (registering contacts nothing): credentials sealed.
        r = call("POST", "/tools/http", json={"name": "weather.forecast", "url": "https://api.example.com/f",
                                              "credentials": {"type": "api_key", "header": "X-Api-Key",
                                                              "value": TOKEN}})
        assert r.status_code == 201 and r.json()["data"][0]["has_credentials"], r.text
        assert call("POST", "/tools/http", json={"name": "weather.forecast",
                                                 "url": "https://api.example.com/f"}).status_code == 409
        spec = {"openapi": "3.0.0", "info": {"title": "shop", "version": "1"},
                "servers": [{"url": "https://shop.example.com"}],
                "paths": {"/items/{id}": {"get": {"operationId": "get_item", "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                    "responses": {"200": {"description": "ok"}}}}}}
        r = call("POST", "/tools/openapi", json={"prefix": "shop", "spec": json.dumps(spec)})
        assert r.status_code == 201 and [t["id"] for t in r.json()["data"]] == ["shop.get_item"], r.text
        r = call("POST", "/tools/sql", json={"name": "crm", "driver": "postgresql",
                                             "dsn": f"postgresql://reader:{TOKEN}@db.example.com:5432/crm"})
        assert r.status_code == 201 and sorted(t["id"] for t in r.json()["data"]) == ["crm.query", "crm.schema"]
        kinds = {t["id"]: t["kind"] for t in call("GET", "/tools").json()["data"]}
        assert kinds["weather.forecast"] == "http" and kinds["shop.get_item"] == "openapi"
        assert kinds["crm.query"] == "sql" and kinds["time.now"] == "builtin"
        for target in ("weather.forecast", "shop.*", "crm.*"):
            assert call("DELETE", f"/tools/{target}").status_code == 204
        # Each write is in the workspace's audit log, without its body.
        audit = call("GET", "/audit-logs", params={"action": "tools.create_mcp"}).json()["data"]
        assert audit and {a["action"] for a in audit} == {"tools.create_mcp"}, audit
        assert "tools.delete" in {a["action"] for a in call("GET", "/audit-logs").json()["data"]}

        assert call("DELETE", "/tools/calc.*").status_code == 204
        assert call("GET", "/tools", params={"kind": "mcp"}).json()["data"] == []
    assert all(TOKEN not in text for text in seen)  # not in one response
    tools_log = next(p for p in stack.procs if p.name == "tools").log()
    assert TOKEN not in tools_log


async def _workflow_over_mcp(gateway_url: str, key: str):
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=120) as http, \
            Client(streamable_http_client(f"{gateway_url}/v1/mcp", http_client=http)) as client:
        listed = (await client.list_tools()).tools
        return listed, await client.call_tool(listed[0].name, {"a": 5, "b": 6})


def test_tool_node_picks_an_mcp_tool_by_id_and_the_workflow_is_an_mcp_tool_of_its_inputs(mcp_stack):
    """A workflow's TOOL node names the MCP server's tool by its id; the published workflow is
    then an MCP tool whose schema is its start inputs, and calling it runs the tool node."""
    stack, mcp, _ = mcp_stack
    h = stack.console
    with stack.http() as http:
        r = http.post(stack.ws("/tools/mcp"), headers=h, timeout=60, json={
            "name": "adder", "url": f"http://127.0.0.1:{mcp.port}/mcp",
            "credentials": {"type": "bearer", "token": TOKEN}})
        assert r.status_code == 201, r.text
        graph = {"nodes": [
            {"id": "start", "data": {"type": "start", "title": "Start", "variables": [
                {"variable": "a", "label": "First", "type": "number", "required": True},
                {"variable": "b", "label": "Second", "type": "number", "required": True}]}},
            {"id": "add", "data": {"type": "tool", "title": "Add", "tool_name": "adder.add", "tool_parameters": {
                "a": {"type": "variable", "value": ["start", "a"]},
                "b": {"type": "variable", "value": ["start", "b"]}}}},
            {"id": "end", "data": {"type": "end", "title": "End", "outputs": [
                {"variable": "sum", "value_selector": ["add", "json"]}]}}],
            "edges": [{"id": "e1", "source": "start", "target": "add"}, {"id": "e2", "source": "add", "target": "end"}]}
        app_id = http.post(stack.ws("/apps"), json={"name": "adder flow", "mode": "workflow"}, headers=h).json()["id"]
        draft = http.get(stack.ws(f"/apps/{app_id}/draft"), headers=h).json()["dsl"]
        draft["workflow"]["graph"] = {**draft["workflow"]["graph"], **graph}
        r = http.put(stack.ws(f"/apps/{app_id}/draft"), json={"dsl": draft}, headers=h)
        assert r.is_success, r.text
        assert http.post(stack.ws(f"/apps/{app_id}/publish"), headers=h).is_success
        key = http.post(stack.ws(f"/apps/{app_id}/api-keys"), json={"name": "e2e"}, headers=h).json()["token"]

        r = http.post(f"{stack.gateway_url}/v1/workflows/run", headers={"Authorization": f"Bearer {key}"},
                      json={"inputs": {"a": 2, "b": 3}, "user": "u1", "response_mode": "blocking"}, timeout=120)
        assert r.status_code == 200 and r.json()["data"]["status"] == "succeeded", r.text
        assert r.json()["data"]["outputs"]["sum"] == {"result": 5}

    listed, result = asyncio.run(_workflow_over_mcp(stack.gateway_url, key))
    assert [t.name for t in listed] == ["adder_flow"]
    schema = listed[0].input_schema
    assert schema["required"] == ["a", "b"] and schema["properties"]["a"] == {"type": "number", "description": "First"}
    assert not result.is_error and result.structured_content == {"sum": {"result": 11}}, result
    assert mcp.calls[-2:] == [(2, 3), (5, 6)]
