"""The console's runs of an app's draft over the gateway's real NATS and Postgres, with the
scripted stand-in for the orchestrator (test_gateway_console_e2e.py runs the real one): the
draft run streams the service API's events and is recorded as a debugger run; a single node
becomes a one-node workflow; a stored run's events read back as its trace."""

from __future__ import annotations

import json

import pytest
from gateway_testkit import PASSWORD

from loom_gateway.domain.console_runs import SINGLE_START

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]  # a hang fails with a traceback

FLOW = {
    "nodes": [
        {"id": "start", "data": {"type": "start", "variables": [{"variable": "city", "type": "text-input"}]}},
        {"id": "t", "data": {"type": "template-transform", "template": "Hello {{ city }} {{ n }}!",
                             "variables": [{"variable": "city", "value_selector": ["start", "city"]},
                                           {"variable": "n", "value_selector": ["k", "count"]}]}},
        {"id": "k", "data": {"type": "code", "code": "def main():\n    return {'count': 1}",
                             "outputs": {"count": {"type": "number"}}}},
        {"id": "end", "data": {"type": "end", "outputs": [{"variable": "g", "value_selector": ["t", "output"]}]}},
    ],
    "edges": [{"source": "start", "target": "k"}, {"source": "k", "target": "t"}, {"source": "t", "target": "end"}],
}


def sse_data(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


async def _app(c, admin, mode: str, graph: dict | None = None) -> str:
    """A new app (never published), its draft's graph replaced by `graph`."""
    r = await c.post(admin.ws("/apps"), json={"name": f"{mode}-app", "mode": mode}, headers=admin.headers)
    app_id = r.json()["id"]
    if graph is not None:
        draft = (await c.get(admin.ws(f"/apps/{app_id}/draft"), headers=admin.headers)).json()["dsl"]
        draft["workflow"]["graph"] = graph
        r = await c.put(admin.ws(f"/apps/{app_id}/draft"), json={"dsl": draft}, headers=admin.headers)
        assert r.is_success, r.text
    return app_id


async def test_draft_run_streams_the_draft_and_is_recorded_as_a_debugger_run(gateway, admin, orchestrator) -> None:
    c = gateway.client
    app_id = await _app(c, admin, "workflow", FLOW)  # never published: the draft is what runs
    r = await c.post(admin.ws(f"/apps/{app_id}/draft/run"), json={"inputs": {"city": "Paris"}},
                     headers=admin.headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text
    events = sse_data(r.text)
    names = [e["event"] for e in events]
    assert names[0] == "workflow_started" and names[-1] == "workflow_finished" and "text_chunk" in names
    run_id = events[0]["workflow_run_id"]
    assert {e["task_id"] for e in events} == {run_id}
    sent = orchestrator.requests[-1]
    assert sent.run_id == run_id and sent.app_mode == "workflow" and sent.invoke_from == "debugger"
    assert [n["id"] for n in sent.graph["nodes"]] == ["start", "t", "k", "end"]  # the draft's graph
    assert sent.inputs == {"city": "Paris"} and sent.user == f"console:{admin.account_id}"

    runs = (await c.get(admin.ws(f"/apps/{app_id}/runs"), headers=admin.headers)).json()["data"]
    assert [(x["id"], x["invoke_from"], x["debug"], x["status"]) for x in runs] == [
        (run_id, "debugger", True, "succeeded")]
    audit = (await c.get(admin.ws("/audit-logs"), params={"action": "apps.draft_run"},
                         headers=admin.headers)).json()["data"]
    assert [a["target_id"] for a in audit] == [app_id]

    # The stored run's events read back as they were streamed (the trace of a past run).
    trace = await c.get(admin.ws(f"/apps/{app_id}/runs/{run_id}/events"), headers=admin.headers)
    assert trace.status_code == 200, trace.text
    body = trace.json()
    assert body["data"] == events and body["status"] == "succeeded" and body["truncated"] is False


async def test_draft_run_of_a_chat_app_streams_message_events_and_continues_its_conversation(
        gateway, admin, orchestrator) -> None:
    c = gateway.client
    app_id = await _app(c, admin, "chat")
    r = await c.post(admin.ws(f"/apps/{app_id}/draft/run"), json={"inputs": {}}, headers=admin.headers)
    assert r.status_code == 400 and r.json()["field"] == "query"
    r = await c.post(admin.ws(f"/apps/{app_id}/draft/run"), json={"query": "hi"}, headers=admin.headers)
    events = sse_data(r.text)
    assert {e["event"] for e in events} == {"message", "message_end"}  # the service API's basic chat stream
    conv = events[0]["conversation_id"]
    r = await c.post(admin.ws(f"/apps/{app_id}/draft/run"), json={"query": "again", "conversation_id": conv},
                     headers=admin.headers)
    assert {e["conversation_id"] for e in sse_data(r.text)} == {conv}
    assert orchestrator.requests[-1].conversation_id == conv
    # The trace of a chat run shows every event, workflow ones included.
    run_id = sse_data(r.text)[0]["task_id"]
    trace = (await c.get(admin.ws(f"/apps/{app_id}/runs/{run_id}/events"), headers=admin.headers)).json()
    assert trace["data"][0]["event"] == "workflow_started"


async def test_draft_runs_need_an_editor_and_refuse_bad_input(gateway, admin, orchestrator) -> None:
    c = gateway.client
    app_id = await _app(c, admin, "workflow", FLOW)
    inv = await c.post(admin.ws("/invitations"), json={"email": "n@x.io", "role": "normal"}, headers=admin.headers)
    joined = await c.post("/console/api/invitations/accept", json={"token": inv.json()["token"], "name": "n",
                                                                   "password": PASSWORD})
    normal = {"Authorization": f"Bearer {joined.json()['access_token']}"}
    for path in ("/draft/run", "/draft/nodes/t/run"):
        r = await c.post(admin.ws(f"/apps/{app_id}{path}"), json={"inputs": {}}, headers=normal)
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = await c.post(admin.ws(f"/apps/{app_id}/draft/run"), json={"inputs": "x"}, headers=admin.headers)
    assert r.status_code == 400 and r.json()["field"] == "inputs"
    r = await c.post(admin.ws(f"/apps/{app_id}/draft/run"), json={"inputs": {"city": 3}}, headers=admin.headers)
    assert r.status_code == 400 and r.json()["field"] == "inputs.city"
    r = await c.post(admin.ws(f"/apps/{app_id}/draft/run"), json={"query": "q" * 100_001}, headers=admin.headers)
    assert r.status_code == 400 and r.json()["field"] == "query"
    r = await c.get(admin.ws(f"/apps/{app_id}/runs/nope/events"), headers=admin.headers)
    assert r.status_code == 404
    assert orchestrator.requests == []  # nothing refused was run


async def test_single_node_runs_as_a_one_node_workflow(gateway, admin, orchestrator) -> None:
    c = gateway.client
    app_id = await _app(c, admin, "workflow", FLOW)
    url = admin.ws(f"/apps/{app_id}/draft/nodes/t/run")
    r = await c.post(url, json={"inputs": {"start.city": "Rome", "k.count": 2}}, headers=admin.headers)
    assert r.status_code == 200, r.text
    sent = orchestrator.requests[-1]
    assert sent.app_mode == "workflow" and sent.invoke_from == "single-node"
    assert [n["id"] for n in sent.graph["nodes"]] == [SINGLE_START, "t"]
    node = sent.graph["nodes"][1]["data"]
    # Every upstream read points at the start variable standing for it, typed by its value.
    assert [v["value_selector"] for v in node["variables"]] == [[SINGLE_START, "v1"], [SINGLE_START, "v0"]]
    assert sent.inputs == {"v0": 2, "v1": "Rome"}
    start_vars = {v["variable"]: (v["label"], v["type"]) for v in sent.graph["nodes"][0]["data"]["variables"]}
    assert start_vars == {"v0": ("k.count", "number"), "v1": ("start.city", "paragraph")}
    # The scripted orchestrator never runs node t: the answer says so instead of inventing one.
    assert r.json()["status"] == "failed" and r.json()["error"]
    runs = (await c.get(admin.ws(f"/apps/{app_id}/runs"), headers=admin.headers)).json()["data"]
    assert runs == []  # the editor's node tests are not the app's runs ...
    runs = (await c.get(admin.ws(f"/apps/{app_id}/runs"), params={"invoke_from": "single-node"},
                        headers=admin.headers)).json()["data"]
    assert [x["invoke_from"] for x in runs] == ["single-node"]  # ... unless asked for
    r = await c.get(admin.ws(f"/apps/{app_id}/runs"), params={"invoke_from": "web"}, headers=admin.headers)
    assert r.status_code == 400 and r.json()["field"] == "invoke_from"

    r = await c.post(url, json={"inputs": {"start.nope": 1}}, headers=admin.headers)
    assert r.status_code == 400 and r.json()["field"] == "inputs.start.nope"
    r = await c.post(url, json={"inputs": {"x": 1}}, headers=admin.headers)
    assert r.status_code == 400 and r.json()["field"] == "inputs.x"
    r = await c.post(admin.ws(f"/apps/{app_id}/draft/nodes/missing/run"), json={"inputs": {}}, headers=admin.headers)
    assert r.status_code == 404 and r.json()["code"] == "node_not_exists"
    r = await c.post(admin.ws(f"/apps/{app_id}/draft/nodes/end/run"), json={"inputs": {}}, headers=admin.headers)
    assert r.status_code == 400 and r.json()["field"] == "node_id"


async def test_single_node_reads_of_sys_env_and_conversation_become_the_runs_own(gateway, admin, orchestrator) -> None:
    c = gateway.client
    graph = {
        "nodes": [
            {"id": "start", "data": {"type": "start"}},
            {"id": "t", "data": {"type": "template-transform", "template": "{{ q }} {{ topic }} {{ base }}",
                                 "variables": [{"variable": "q", "value_selector": ["sys", "query"]},
                                               {"variable": "topic", "value_selector": ["conversation", "topic"]},
                                               {"variable": "base", "value_selector": ["env", "base"]}]}},
            {"id": "answer", "data": {"type": "answer", "answer": "{{#t.output#}}"}},
        ],
        "edges": [{"source": "start", "target": "t"}, {"source": "t", "target": "answer"}],
        "conversation_variables": [{"name": "topic", "value_type": "string", "value": "none"}],
        "environment_variables": [{"name": "base", "value_type": "string", "value": "x"}],
    }
    app_id = await _app(c, admin, "chatflow", graph)
    r = await c.post(admin.ws(f"/apps/{app_id}/draft/nodes/t/run"), headers=admin.headers,
                     json={"inputs": {"sys.query": "hello", "conversation.topic": "cats"}})
    assert r.status_code == 200, r.text
    sent = orchestrator.requests[-1]
    assert sent.query == "hello" and sent.inputs == {} and sent.app_mode == "workflow"
    assert sent.graph["conversation_variables"][0]["value"] == "cats"
    assert sent.graph["environment_variables"][0]["value"] == "x"  # not typed: the draft's value
    node = sent.graph["nodes"][1]["data"]
    assert [v["value_selector"] for v in node["variables"]] == [["sys", "query"], ["conversation", "topic"],
                                                                 ["env", "base"]]
    r = await c.post(admin.ws(f"/apps/{app_id}/draft/nodes/answer/run"), headers=admin.headers,
                     json={"inputs": {"t.output": "typed"}})
    assert r.status_code == 200
    assert orchestrator.requests[-1].graph["nodes"][1]["data"]["answer"] == f"{{{{#{SINGLE_START}.v0#}}}}"
    assert orchestrator.requests[-1].inputs == {"v0": "typed"}
