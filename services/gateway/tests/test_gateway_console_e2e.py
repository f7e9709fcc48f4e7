"""The console's draft runs with the real stack (orchestrator, tools' code sandbox, NATS,
Postgres as processes): a draft workflow streams every node's trace, a single node runs with
hand-typed inputs (a template-transform and a code node), and the stored trace reads back.
No model is called here: template and code nodes only, so outputs are exact."""

from __future__ import annotations

import json

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

FLOW = {
    "nodes": [
        {"id": "start", "data": {"type": "start", "variables": [{"variable": "city", "type": "text-input"}]}},
        {"id": "k", "data": {"type": "code", "code": "def main(c):\n    return {'count': len(c)}",
                             "variables": [{"variable": "c", "value_selector": ["start", "city"]}],
                             "outputs": {"count": {"type": "number"}}}},
        {"id": "t", "data": {"type": "template-transform", "template": "Hello {{ city }} {{ n }}!",
                             "variables": [{"variable": "city", "value_selector": ["start", "city"]},
                                           {"variable": "n", "value_selector": ["k", "count"]}]}},
        {"id": "end", "data": {"type": "end",
                               "outputs": [{"variable": "greeting", "value_selector": ["t", "output"]}]}},
    ],
    "edges": [{"source": "start", "target": "k"}, {"source": "k", "target": "t"}, {"source": "t", "target": "end"}],
}


def _draft_app(stack) -> str:
    h = stack.console
    app_id = httpx.post(stack.ws("/apps"), json={"name": "console-e2e", "mode": "workflow"}, headers=h).json()["id"]
    draft = httpx.get(stack.ws(f"/apps/{app_id}/draft"), headers=h).json()["dsl"]
    draft["workflow"]["graph"] = FLOW
    httpx.put(stack.ws(f"/apps/{app_id}/draft"), json={"dsl": draft}, headers=h).raise_for_status()
    return app_id  # never published


def test_draft_run_and_single_nodes_with_the_real_orchestrator(stack) -> None:
    h = stack.console
    app_id = _draft_app(stack)
    with httpx.stream("POST", stack.ws(f"/apps/{app_id}/draft/run"), json={"inputs": {"city": "Paris"}},
                      headers=h, timeout=120) as r:
        assert r.status_code == 200
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    names = [e["event"] for e in events]
    assert names[0] == "workflow_started" and names[-1] == "workflow_finished", names
    finished = {e["data"]["node_id"]: e["data"] for e in events if e["event"] == "node_finished"}
    assert set(finished) == {"start", "k", "t", "end"}
    started = {e["data"]["node_id"]: e["data"] for e in events if e["event"] == "node_started"}
    assert set(started) == set(finished)
    # node_started names what the node reads by selector: the keys a single-node run takes.
    assert started["t"]["inputs"] == {"start.city": "Paris", "k.count": 5}
    assert finished["k"]["outputs"] == {"count": 5} and finished["k"]["inputs"] == {"c": "Paris"}
    assert finished["t"]["outputs"] == {"output": "Hello Paris 5!"} and finished["t"]["status"] == "succeeded"
    assert all(isinstance(d["elapsed_time"], int | float) for d in finished.values())
    assert events[-1]["data"]["status"] == "succeeded" and events[-1]["data"]["outputs"] == {
        "greeting": "Hello Paris 5!"}

    run_id = events[0]["workflow_run_id"]
    trace = httpx.get(stack.ws(f"/apps/{app_id}/runs/{run_id}/events"), headers=h).json()
    assert trace["data"] == events and trace["status"] == "succeeded"

    # One node at a time, fed by hand: the template with values no upstream node produced ...
    r = httpx.post(stack.ws(f"/apps/{app_id}/draft/nodes/t/run"),
                   json={"inputs": {"start.city": "Rome", "k.count": 42}}, headers=h, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "succeeded" and body["outputs"] == {"output": "Hello Rome 42!"}, body
    assert body["inputs"] == {"city": "Rome", "n": 42} and body["error"] is None and body["total_tokens"] == 0
    # ... and the code node in the tools sandbox; a failing node answers its error.
    r = httpx.post(stack.ws(f"/apps/{app_id}/draft/nodes/k/run"), json={"inputs": {"start.city": "abcd"}},
                   headers=h, timeout=120)
    assert r.json()["status"] == "succeeded" and r.json()["outputs"] == {"count": 4}, r.text
    r = httpx.post(stack.ws(f"/apps/{app_id}/draft/nodes/k/run"), json={"inputs": {"start.city": None}},
                   headers=h, timeout=120)
    assert r.json()["status"] == "failed" and "len" in r.json()["error"], r.text

    runs = httpx.get(stack.ws(f"/apps/{app_id}/runs"), headers=h).json()["data"]
    assert [x["invoke_from"] for x in runs] == ["debugger"]
    nodes = httpx.get(stack.ws(f"/apps/{app_id}/runs"), params={"invoke_from": "single-node"}, headers=h).json()
    assert [x["status"] for x in nodes["data"]] == ["failed", "succeeded", "succeeded"]
