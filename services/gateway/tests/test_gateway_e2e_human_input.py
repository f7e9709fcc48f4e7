"""Human-input end to end on real processes: the gateway and the orchestrator (each logged in to
NATS as its own user, on a NATS server and a database of this module's own) over real NATS
JetStream and Postgres. No model is involved: the graphs here have no model node.

- A Dify export with document-extractor, list-operator and human-input imports and runs: the
  uploaded file's text reaches the form, an editor answers it in the console (audit-logged).
- A paused run survives restarts of the orchestrator and the gateway; a bad answer is a 400
  naming the field, a second answer a 409, and the answer reaches the next node; the client
  reattaches to the run's stream after the pause and reads it to its end.
- A form only the console may answer is refused through the service API (403).
- A form nobody answers takes its timeout branch (the orchestrator's durable timer), a late
  answer is a 409, and another app's key cannot answer it (404).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from loom_common.db import _with_database
from loom_common.devstack import infra, nats_auth
from loom_common.testing import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

PASSWORD = "correct horse battery"
PATIENCE_S = 120  # how long a run may take to get somewhere on a loaded box (no bound is asserted)


class Two:
    """The gateway and the orchestrator as processes, signed in as the workspace's owner."""

    def __init__(self, gateway: ServiceProcess, orchestrator: ServiceProcess):
        self.gateway, self.orchestrator = gateway, orchestrator
        self.url = gateway.base_url
        self.token = self.workspace_id = ""

    @property
    def console(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def ws(self, path: str) -> str:
        return f"{self.url}/console/api/workspaces/{self.workspace_id}{path}"


@pytest.fixture(scope="module")
def two(database_url, tmp_path_factory) -> Iterator[Two]:
    home = tmp_path_factory.mktemp("hi")
    nats = infra.EmbeddedNats(home / "nats").start()
    users = nats_auth.load_users(infra.nats_secrets_dir(nats.store_dir))
    db = _with_database(database_url, f"hi_{uuid.uuid4().hex[:10]}")
    base = {"LOOM_NATS_URL": nats.url, "LOOM_DATABASE_URL": db, "LOOM_HOME": str(home), "PYTHONUNBUFFERED": "1",
            "LOOM_LOG_LEVEL": "WARNING", "LOOM_GRACEFUL_TIMEOUT_S": "5", "LOOM_INFERENCE_ADDR": "127.0.0.1:1",
            "LOOM_RAG_ADDR": "127.0.0.1:1", "LOOM_TOOLS_ADDR": "127.0.0.1:1"}

    def proc(name: str, **extra: str) -> ServiceProcess:
        port = infra.free_port()
        env = {**base, f"LOOM_{name.upper()}_HTTP_PORT": str(port), "LOOM_NATS_USER": name,
               "LOOM_NATS_PASSWORD": users.passwords[name], **extra}
        admin = int(extra["LOOM_GATEWAY_ADMIN_PORT"]) if name == "gateway" else None
        return ServiceProcess(name, env, port, home / f"{name}.log", admin)

    import asyncio

    from loom_common import db as dbmod

    asyncio.run(dbmod.ensure_database(db))
    orchestrator = proc("orchestrator", LOOM_ORCHESTRATOR_HUMAN_INPUT_TIMER_S="0.5",
                        LOOM_ORCHESTRATOR_RUNS_ACK_WAIT_S="4")
    gateway = proc("gateway", LOOM_GATEWAY_ADMIN_PORT=str(infra.free_port()),
                   LOOM_GATEWAY_STREAM_IDLE_TIMEOUT_S="60")
    started: list[ServiceProcess] = []
    try:
        for p in (orchestrator, gateway):
            p.start(120)
            started.append(p)
        t = Two(gateway, orchestrator)
        r = httpx.post(f"{t.url}/console/api/setup", json={"email": "admin@example.com", "name": "Admin",
                                                           "password": PASSWORD, "workspace_name": "HI"})
        r.raise_for_status()
        t.token, t.workspace_id = r.json()["access_token"], r.json()["workspace"]["id"]
        yield t
    finally:
        for p in started:
            p.stop(15)
        nats.stop()


def _publish_with_key(t: Two, app_id: str) -> str:
    httpx.post(t.ws(f"/apps/{app_id}/publish"), headers=t.console).raise_for_status()
    r = httpx.post(t.ws(f"/apps/{app_id}/api-keys"), json={"name": "k"}, headers=t.console)
    r.raise_for_status()
    return r.json()["token"]


def _workflow_app(t: Two, graph: dict, name: str) -> tuple[str, str]:
    app_id = httpx.post(t.ws("/apps"), json={"name": name, "mode": "workflow"}, headers=t.console).json()["id"]
    draft = httpx.get(t.ws(f"/apps/{app_id}/draft"), headers=t.console).json()["dsl"]
    draft["workflow"]["graph"] = graph
    httpx.put(t.ws(f"/apps/{app_id}/draft"), json={"dsl": draft}, headers=t.console).raise_for_status()
    return app_id, _publish_with_key(t, app_id)


def _until(check, what: str):
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"never: {what}")


def _detail(t: Two, key: str, run_id: str) -> dict:
    r = httpx.get(f"{t.url}/v1/workflows/run/{run_id}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    r.raise_for_status()
    return r.json()


def _sse(resp: httpx.Response) -> list[tuple[int | None, dict]]:
    out, last_id = [], None
    for line in resp.iter_lines():
        if line.startswith("id: "):
            last_id = int(line[4:])
        elif line.startswith("data: "):
            out.append((last_id, json.loads(line[6:])))
    return out


DIFY_EXPORT = """
app: {mode: workflow, name: Review uploads}
kind: app
version: 0.3.0
workflow:
  graph:
    edges:
    - {source: start, target: txts, sourceHandle: source, targetHandle: target}
    - {source: txts, target: doc, sourceHandle: source, targetHandle: target}
    - {source: doc, target: review, sourceHandle: source, targetHandle: target}
    - {source: review, target: end, sourceHandle: approve, targetHandle: target}
    - {source: review, target: end_late, sourceHandle: __timeout, targetHandle: target}
    nodes:
    - {id: start, type: custom, data: {type: start, title: Start, variables: []}}
    - id: txts
      type: custom
      data:
        type: list-operator
        title: Text files
        variable: [sys, files]
        filter_by: {enabled: true, conditions: [{key: extension, comparison_operator: is, value: .txt}]}
        order_by: {enabled: false, key: '', value: asc}
        limit: {enabled: true, size: 1}
        extract_by: {enabled: false, serial: '1'}
    - id: doc
      type: custom
      data: {type: document-extractor, title: Extract, variable_selector: [txts, result], is_array_file: true}
    - id: review
      type: custom
      data:
        type: human-input
        title: Review
        form_content: 'Please check: {{#doc.text#}}'
        inputs:
        - {type: paragraph, output_variable_name: verdict, default: {type: constant, value: ''}}
        user_actions:
        - {id: approve, title: Approve, button_style: primary}
        timeout: 36
        timeout_unit: hour
        delivery_methods: [{type: webapp, enabled: true}]
    - id: end
      type: custom
      data:
        type: end
        title: End
        outputs:
        - {variable: verdict, value_selector: [review, verdict]}
        - {variable: text, value_selector: [doc, text]}
    - {id: end_late, type: custom, data: {type: end, title: Late, outputs: []}}
"""


def test_a_dify_export_with_extractor_list_operator_and_human_input_imports_and_runs(two: Two) -> None:
    r = httpx.post(two.ws("/apps/import"), json={"data": DIFY_EXPORT}, headers=two.console)
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    key = _publish_with_key(two, app_id)
    h = {"Authorization": f"Bearer {key}"}
    ids = []
    for name, body, mime in (("notes.txt", b"Order 42 arrived broken.", "text/plain"),
                             ("photo.csv", b"a,b\n1,2\n", "text/csv")):
        up = httpx.post(f"{two.url}/v1/files/upload", files={"file": (name, body, mime)}, data={"user": "u1"},
                        headers=h, timeout=30)
        assert up.status_code == 201, up.text
        ids.append(up.json()["id"])
    files = [{"type": "document", "transfer_method": "local_file", "upload_file_id": i} for i in ids]
    r = httpx.post(f"{two.url}/v1/workflows/run", json={"inputs": {}, "user": "u1", "files": files,
                                                        "response_mode": "blocking"}, headers=h, timeout=PATIENCE_S)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["status"] == "paused", data
    [form] = data["human_inputs"]
    # list-operator kept the .txt file, document-extractor read it, and the form shows its text.
    assert form["form_content"] == "Please check: [\"Order 42 arrived broken.\"]" or \
        "Order 42 arrived broken." in form["form_content"]
    assert [f["name"] for f in form["fields"]] == ["verdict"]
    run_id = r.json()["workflow_run_id"]
    # Answered in the console by an editor (the workspace's owner here), audit-logged.
    r = httpx.post(two.ws(f"/apps/{app_id}/runs/{run_id}/human-inputs/{form['form_id']}"),
                   json={"inputs": {"verdict": "refund it"}, "action": "approve"}, headers=two.console)
    assert r.status_code == 200, r.text
    done = _until(lambda: (d := _detail(two, key, run_id))["status"] == "succeeded" and d, "the run finished")
    assert done["outputs"]["verdict"] == "refund it"
    assert done["outputs"]["text"] == ["Order 42 arrived broken."]
    audit = httpx.get(two.ws("/audit-logs"), params={"action": "runs.human_input"}, headers=two.console).json()
    assert [a["target_id"] for a in audit["data"]] == [run_id]


GRAPH = {
    "nodes": [
        {"id": "start", "data": {"type": "start", "variables": [
            {"variable": "ticket", "type": "text-input", "required": True}]}},
        {"id": "agent", "data": {"type": "human-input", "title": "Agent reply",
                                 "form_content": "Ticket: {{#start.ticket#}}",
                                 "fields": [{"name": "reply", "type": "paragraph", "label": "Reply"},
                                            {"name": "priority", "type": "select", "options": ["low", "high"],
                                             "required": False, "default": "low"}],
                                 "user_actions": [{"id": "send", "title": "Send"}, {"id": "drop", "title": "Drop"}],
                                 "timeout": 1, "timeout_unit": "day"}},
        {"id": "fmt", "data": {"type": "template-transform", "template": "[{{ p }}] {{ r }}",
                               "variables": [{"variable": "r", "value_selector": ["agent", "reply"]},
                                             {"variable": "p", "value_selector": ["agent", "priority"]}]}},
        {"id": "end", "data": {"type": "end", "outputs": [{"variable": "reply", "value_selector": ["fmt", "output"]}]}},
        {"id": "dropped", "data": {"type": "end", "outputs": []}},
    ],
    "edges": [{"source": "start", "target": "agent"},
              {"source": "agent", "target": "fmt", "source_handle": "send"},
              {"source": "agent", "target": "dropped", "source_handle": "drop"},
              {"source": "fmt", "target": "end"}],
}


def test_a_paused_run_survives_restarts_and_takes_one_valid_answer(two: Two) -> None:
    _, key = _workflow_app(two, GRAPH, "agent reply")
    h = {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", f"{two.url}/v1/workflows/run", json={"inputs": {"ticket": "T-9"}, "user": "u2",
                                                                   "response_mode": "streaming"},
                      headers=h, timeout=PATIENCE_S) as resp:
        first = _sse(resp)
    names = [e["event"] for _, e in first]
    assert names[-1] == "workflow_paused" and "human_input_required" in names  # the stream ends at the pause
    required = next(e for _, e in first if e["event"] == "human_input_required")["data"]
    run_id, paused_seq = first[-1][1]["workflow_run_id"], first[-1][0]
    assert required["form_content"] == "Ticket: T-9"
    assert _detail(two, key, run_id)["status"] == "paused"

    # Both services restart while the run waits (nothing of it was held in either).
    two.orchestrator.stop(15)
    two.gateway.stop(15)
    two.orchestrator.start(120)
    two.gateway.start(120)

    detail = _detail(two, key, run_id)
    assert detail["status"] == "paused" and [f["form_id"] for f in detail["human_inputs"]] == [required["form_id"]]
    listed = httpx.get(f"{two.url}/v1/runs/{run_id}/human-inputs", headers=h).json()["data"]
    assert [f["form_id"] for f in listed] == [required["form_id"]]
    submit = f"{two.url}/v1/runs/{run_id}/human-inputs/{required['form_id']}"
    for body, field in (({"inputs": {}, "action": "send"}, "inputs.reply"),
                        ({"inputs": {"reply": 7}, "action": "send"}, "inputs.reply"),
                        ({"inputs": {"reply": "ok", "priority": "urgent"}, "action": "send"}, "inputs.priority"),
                        ({"inputs": {"reply": "ok", "extra": 1}, "action": "send"}, "inputs.extra"),
                        ({"inputs": {"reply": "ok"}, "action": "nope"}, "action")):
        r = httpx.post(submit, json={**body, "user": "agent-1"}, headers=h)
        assert r.status_code == 400 and r.json()["field"] == field, (body, r.text)
    r = httpx.post(f"{two.url}/v1/runs/{run_id}/human-inputs/not-a-form", json={"inputs": {}, "user": "a"},
                   headers=h)
    assert r.status_code == 409 and r.json()["code"] == "form_not_pending", r.text
    r = httpx.post(submit, json={"inputs": {"reply": "We will refund you.", "priority": "high"}, "action": "send",
                                 "user": "agent-1"}, headers=h)
    assert r.status_code == 200, r.text
    r = httpx.post(submit, json={"inputs": {"reply": "again"}, "action": "send", "user": "agent-2"}, headers=h)
    assert r.status_code == 409 and r.json()["code"] == "already_answered", r.text

    # The client reattaches after the pause and reads the run to its end.
    with httpx.stream("GET", f"{two.url}/v1/runs/{run_id}/events", headers={**h, "Last-Event-ID": str(paused_seq)},
                      timeout=PATIENCE_S) as resp:
        rest = _sse(resp)
    rest_names = [e["event"] for _, e in rest]
    assert rest_names[0] == "workflow_resumed" and rest_names[-1] == "workflow_finished", rest_names
    assert [s for s, _ in rest] == list(range(paused_seq + 1, paused_seq + 1 + len(rest)))
    assert rest[-1][1]["data"]["outputs"] == {"reply": "[high] We will refund you."}
    human = next(e for _, e in rest if e["event"] == "node_finished" and e["data"]["node_id"] == "agent")
    assert human["data"]["outputs"]["action_id"] == "send"
    assert _until(lambda: _detail(two, key, run_id)["status"] == "succeeded", "the run recorded as succeeded")


def test_a_form_nobody_answers_takes_the_timeout_branch(two: Two) -> None:
    graph = json.loads(json.dumps(GRAPH))
    agent = graph["nodes"][1]["data"]
    agent["timeout"], agent["timeout_unit"] = 1, "second"
    graph["nodes"].append({"id": "late", "data": {"type": "template-transform", "template": "late: {{ t }}",
                                                  "variables": [{"variable": "t",
                                                                 "value_selector": ["agent", "timed_out"]}]}})
    graph["nodes"].append({"id": "end_late", "data": {"type": "end", "outputs": [
        {"variable": "late", "value_selector": ["late", "output"]},
        {"variable": "priority", "value_selector": ["agent", "priority"]}]}})
    graph["edges"] += [{"source": "agent", "target": "late", "source_handle": "timeout"},
                       {"source": "late", "target": "end_late"}]
    _, key = _workflow_app(two, graph, "agent reply, timed")
    h = {"Authorization": f"Bearer {key}"}
    r = httpx.post(f"{two.url}/v1/workflows/run", json={"inputs": {"ticket": "T-10"}, "user": "u3",
                                                        "response_mode": "blocking"}, headers=h, timeout=PATIENCE_S)
    assert r.status_code == 200, r.text
    run_id = r.json()["workflow_run_id"]
    form_id = r.json()["data"]["human_inputs"][0]["form_id"] if r.json()["data"]["status"] == "paused" else None
    if form_id is not None:  # another app's key does not see this app's runs
        _, other = _workflow_app(two, GRAPH, "another app")
        r = httpx.post(f"{two.url}/v1/runs/{run_id}/human-inputs/{form_id}",
                       headers={"Authorization": f"Bearer {other}"},
                       json={"inputs": {"reply": "mine"}, "action": "send", "user": "x"})
        assert r.status_code == 404, r.text
    done = _until(lambda: (d := _detail(two, key, run_id))["status"] == "succeeded" and d, "the timeout branch ran")
    assert done["outputs"] == {"late": "late: True", "priority": "low"}
    if form_id is not None:
        r = httpx.post(f"{two.url}/v1/runs/{run_id}/human-inputs/{form_id}",
                       json={"inputs": {"reply": "too late"}, "action": "send", "user": "a"}, headers=h)
        assert r.status_code == 409, r.text


def test_a_console_only_form_is_refused_through_the_service_api(two: Two) -> None:
    graph = json.loads(json.dumps(GRAPH))
    graph["nodes"][1]["data"]["answerable_by"] = ["console"]
    app_id, key = _workflow_app(two, graph, "console-only review")
    h = {"Authorization": f"Bearer {key}"}
    r = httpx.post(f"{two.url}/v1/workflows/run", json={"inputs": {"ticket": "T-11"}, "user": "u4",
                                                        "response_mode": "blocking"}, headers=h, timeout=PATIENCE_S)
    assert r.status_code == 200 and r.json()["data"]["status"] == "paused", r.text
    run_id, [form] = r.json()["workflow_run_id"], r.json()["data"]["human_inputs"]
    body = {"inputs": {"reply": "ok"}, "action": "drop"}
    r = httpx.post(f"{two.url}/v1/runs/{run_id}/human-inputs/{form['form_id']}", json={**body, "user": "a"}, headers=h)
    assert r.status_code == 403, r.text
    listed = httpx.get(two.ws(f"/apps/{app_id}/runs/{run_id}/human-inputs"), headers=two.console).json()["data"]
    assert [f["form_id"] for f in listed] == [form["form_id"]]
    r = httpx.post(two.ws(f"/apps/{app_id}/runs/{run_id}/human-inputs/{form['form_id']}"), json=body,
                   headers=two.console)
    assert r.status_code == 200, r.text
    done = _until(lambda: (d := _detail(two, key, run_id))["status"] == "succeeded" and d, "the drop branch ran")
    assert done["outputs"] == {}  # the drop branch's end has no outputs
