"""The gateway's MCP face and tool routes, in-process (real NATS and Postgres; the scripted
orchestrator of gateway_testkit plays the runs):

- every published app is an MCP server at /v1/mcp behind its app key: the official `mcp` SDK
  client lists the app as one tool (a workflow's start inputs as its JSON schema, a chat app's
  `query`) and calls it through the normal run path; a wrong key is a 401;
- the console's tool routes refuse bad input with a 400 naming the field, a credential sent as
  a plain header included (never echoed), and keep writes to editors and up.

The tool routes against the real tools service, and an agent calling an MCP server's tool, are
in test_gateway_e2e_mcp.py."""

from __future__ import annotations

import httpx
import httpx2
import pytest
from gateway_testkit import PASSWORD, make_app, republish
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.integration

SECRET = "sk-never-echo-4242"


async def _mcp(base_url: str, key: str, work):
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http, \
            Client(streamable_http_client(f"{base_url}/v1/mcp", http_client=http)) as client:
        return await work(client)


def _with_inputs(draft: dict) -> None:
    start = next(n for n in draft["workflow"]["graph"]["nodes"] if n["data"]["type"] == "start")
    start["data"]["variables"] = [
        {"variable": "city", "label": "City", "type": "text-input", "required": True, "max_length": 40},
        {"variable": "days", "type": "number", "required": False},
        {"variable": "unit", "type": "select", "options": ["C", "F"], "required": False}]


async def test_published_workflow_is_an_mcp_tool_listed_and_called_by_the_sdk_client(gateway, admin, orchestrator):
    c = gateway.client
    app_id, key = await make_app(c, admin, "workflow", name="Weather report")
    await republish(c, admin, app_id, _with_inputs)

    async def work(client: Client):
        listed = (await client.list_tools()).tools
        ok = await client.call_tool(listed[0].name, {"city": "Lyon", "days": 2})
        missing = await client.call_tool(listed[0].name, {"days": 2})
        return listed, ok, missing

    listed, ok, missing = await _mcp(gateway.base_url, key, work)
    assert [t.name for t in listed] == ["Weather_report"]
    schema = listed[0].input_schema
    assert schema["required"] == ["city"] and schema["properties"]["city"] == {
        "type": "string", "maxLength": 40, "description": "City"}
    assert schema["properties"]["days"]["type"] == "number" and schema["properties"]["unit"]["enum"] == ["C", "F"]
    assert not ok.is_error and ok.structured_content == {"echo": {"city": "Lyon", "days": 2}}
    # The run went through the service API's path: recorded for the MCP client as its user.
    run = orchestrator.requests[-1]
    assert run.app_id == app_id and run.inputs == {"city": "Lyon", "days": 2} and run.user == "mcp-client"
    # A missing required input is the tool's error naming the input, and nothing runs.
    assert missing.is_error and "inputs.city" in missing.content[0].text
    assert len(orchestrator.requests) == 1


async def test_published_chat_app_takes_query_over_mcp(gateway, admin, orchestrator):
    _, key = await make_app(gateway.client, admin, "chat", name="helper bot")

    async def work(client: Client):
        listed = (await client.list_tools()).tools
        return (listed, await client.call_tool(listed[0].name, {"query": "hello"}),
                await client.call_tool("another_app", {"query": "hi"}), await client.call_tool(listed[0].name, {}))

    listed, answer, unknown, no_query = await _mcp(gateway.base_url, key, work)
    assert listed[0].name == "helper_bot" and listed[0].input_schema["required"] == ["query"]
    assert not answer.is_error and answer.content[0].text == "tok0 tok1 tok2 "
    assert orchestrator.requests[-1].query == "hello"
    # A key reaches its own app only; a call without its query is refused naming it; neither runs.
    assert unknown.is_error and "unknown tool 'another_app'" in unknown.content[0].text
    assert no_query.is_error and "query" in no_query.content[0].text
    assert len(orchestrator.requests) == 1


async def test_mcp_endpoint_refuses_a_wrong_or_missing_key(gateway, admin):
    await make_app(gateway.client, admin, "chat")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        for auth in ({}, {"Authorization": "Bearer app-not-a-real-key"}, {"Authorization": f"Bearer {admin.token}"}):
            r = await http.post("/v1/mcp", json=body, headers={**headers, **auth})
            assert r.status_code == 401, (auth, r.text)
            assert r.json()["code"] == "unauthorized"
    with pytest.raises(BaseException) as err:  # and the SDK client does not get a session
        await _mcp(gateway.base_url, "app-not-a-real-key", lambda client: client.list_tools())
    assert "MCPError" in repr(err.value), repr(err.value)  # the 401 as the SDK reports it


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/tools/mcp", {"name": "bad name", "url": "https://mcp.example.com/mcp"}, "name"),
    ("/tools/mcp", {"name": "ok"}, "url"),
    ("/tools/mcp", {"name": "ok", "url": "https://mcp.example.com/mcp",
                    "headers": {"Authorization": f"Bearer {SECRET}"}}, "headers"),
    ("/tools/mcp", {"name": "ok", "url": "https://mcp.example.com/mcp",
                    "credentials": {"type": "basic", "password": SECRET}}, "credentials"),
    ("/tools/http", {"name": "ok", "url": "https://api.example.com/x", "method": "BREW"}, "method"),
    ("/tools/sql", {"name": "db", "driver": "oracle", "dsn": f"oracle://u:{SECRET}@h/db"}, "driver"),
    ("/tools/openapi", {"prefix": "shop"}, "spec"),
    ("/tools/calc.add/test", {"arguments": {}, "timeout_s": 9999}, "timeout_s"),
])
async def test_tool_routes_name_the_field_of_bad_input_and_never_echo_a_secret(gateway, admin, path, body, field):
    r = await gateway.client.post(admin.ws(path), json=body, headers=admin.headers)
    assert r.status_code == 400, r.text
    assert r.json()["field"].split(".")[0] == field, r.json()
    assert SECRET not in r.text


async def test_tool_writes_need_an_editor(gateway, admin):
    c = gateway.client
    inv = await c.post(admin.ws("/invitations"), json={"email": "n@x.io", "role": "normal"}, headers=admin.headers)
    joined = await c.post("/console/api/invitations/accept", json={"token": inv.json()["token"], "name": "n",
                                                                   "password": PASSWORD})
    normal = {"Authorization": f"Bearer {joined.json()['access_token']}"}
    body = {"name": "calc", "url": "https://mcp.example.com/mcp", "credentials": {"type": "bearer", "token": SECRET}}
    r = await c.post(admin.ws("/tools/mcp"), json=body, headers=normal)
    assert r.status_code == 403 and SECRET not in r.text
    assert (await c.delete(admin.ws("/tools/calc.*"), headers=normal)).status_code == 403
    assert (await c.post(admin.ws("/tools/calc.add/test"), json={}, headers=normal)).status_code == 403
