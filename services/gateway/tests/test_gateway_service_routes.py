"""Smaller Dify service-API routes over the gateway's real NATS and Postgres, with the scripted
stand-in for the orchestrator: POST /v1/workflows/{workflow_id}/run (one published version,
current or older) and GET /v1/end-users/{id} (Dify's EndUserDetail, scoped to the key's app)."""

from __future__ import annotations

import pytest
from gateway_testkit import Console, make_app, republish

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _title(dsl: dict, title: str) -> None:
    dsl["workflow"]["graph"]["nodes"][0]["data"]["title"] = title


async def test_a_workflow_runs_the_published_version_it_names(gateway, admin, orchestrator) -> None:
    c = gateway.client
    app_id, key = await make_app(c, admin, "workflow")
    h = {"Authorization": f"Bearer {key}"}
    await republish(c, admin, app_id, lambda d: _title(d, "second"))  # version 2, now the current one
    versions = (await c.get(admin.ws(f"/apps/{app_id}/versions"), headers=admin.headers)).json()["data"]
    assert [v["version"] for v in versions] == [2, 1]

    r = await c.post("/v1/workflows/1/run", json={"inputs": {}, "user": "u", "response_mode": "blocking"},
                     headers=h)
    assert r.status_code == 200 and r.json()["data"]["status"] == "succeeded", r.text
    assert orchestrator.requests[-1].graph["nodes"][0]["data"]["title"] != "second"
    r = await c.post("/v1/workflows/2/run", json={"inputs": {}, "user": "u", "response_mode": "streaming"},
                     headers=h)
    assert r.status_code == 200 and "workflow_finished" in r.text
    assert orchestrator.requests[-1].graph["nodes"][0]["data"]["title"] == "second"
    r = await c.post("/v1/workflows/run", json={"inputs": {}, "user": "u"}, headers=h)  # unchanged: the current
    assert r.status_code == 200 and orchestrator.requests[-1].graph["nodes"][0]["data"]["title"] == "second"


async def test_workflow_id_errors_name_the_field_and_other_apps_versions_stay_hidden(
        gateway, admin, orchestrator) -> None:
    c = gateway.client
    _, key = await make_app(c, admin, "workflow")
    other_id, _ = await make_app(c, admin, "workflow", name="other")
    await republish(c, admin, other_id, lambda d: _title(d, "other v2"))  # the other app has a version 2
    h = {"Authorization": f"Bearer {key}"}
    body = {"inputs": {}, "user": "u", "response_mode": "blocking"}
    r = await c.post("/v1/workflows/2/run", json=body, headers=h)
    assert r.status_code == 404 and r.json()["code"] == "workflow_not_found", r.text
    for bad in ("abc", "0", "1e3", "-1"):
        r = await c.post(f"/v1/workflows/{bad}/run", json=body, headers=h)
        assert r.status_code == 400 and r.json()["field"] == "workflow_id", (bad, r.text)
    r = await c.post("/v1/workflows/1/run", json={"inputs": {}}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "user"
    _, chat_key = await make_app(c, admin, "chat", name="chat")
    r = await c.post("/v1/workflows/1/run", json=body, headers={"Authorization": f"Bearer {chat_key}"})
    assert r.status_code == 400 and r.json()["code"] == "not_workflow_app"
    r = await c.post("/v1/workflows/1/run", json=body, headers={"Authorization": "Bearer app-x"})
    assert r.status_code == 401


async def test_end_user_detail_in_difys_shape_and_only_for_its_app(gateway, admin) -> None:
    c = gateway.client
    _, key = await make_app(c, admin, "chat")
    _, other_key = await make_app(c, admin, "chat", name="other")
    h = {"Authorization": f"Bearer {key}"}
    up = await c.post("/v1/files/upload", files={"file": ("notes.txt", b"hello", "text/plain")},
                      data={"user": "alice@example.com"}, headers=h)
    end_user_id = up.json()["created_by"]
    r = await c.get(f"/v1/end-users/{end_user_id}", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "tenant_id", "app_id", "type", "external_user_id", "name", "is_anonymous",
                         "session_id", "created_at", "updated_at"}
    assert body["id"] == end_user_id and body["session_id"] == body["external_user_id"] == "alice@example.com"
    assert body["type"] == "service_api" and body["is_anonymous"] is False
    for headers in ({"Authorization": f"Bearer {other_key}"}, h):  # another app's key; an unknown id
        r = await c.get(f"/v1/end-users/{end_user_id if headers is not h else 'nope'}", headers=headers)
        assert r.status_code == 404 and r.json()["code"] == "end_user_not_found", r.text
    r = await c.get(f"/v1/end-users/{end_user_id}", headers=admin.headers)  # a console token is no app key
    assert r.status_code == 403


async def test_file_inputs_are_resolved_within_the_apps_workspace(gateway, admin, orchestrator) -> None:
    """A start node's `file` / `file-list` inputs are checked like `files`: a file of another
    workspace is 400 naming the input; the app's own reaches the run with its stored name and type."""
    c = gateway.client
    app_id, key = await make_app(c, admin, "workflow")

    def file_inputs(dsl: dict) -> None:
        start = dsl["workflow"]["graph"]["nodes"][0]["data"]
        start["variables"] = [{"variable": "report", "type": "file", "required": False},
                              {"variable": "scans", "type": "file-list", "required": False}]

    await republish(c, admin, app_id, file_inputs)
    _, sibling_key = await make_app(c, admin, "workflow", name="sibling")  # same workspace: its files are usable
    other_ws = (await c.post("/console/api/workspaces", json={"name": "B"}, headers=admin.headers)).json()["id"]
    _, foreign_key = await make_app(c, Console(admin.token, other_ws, admin.account_id), "workflow", name="b")
    h = {"Authorization": f"Bearer {key}"}

    async def upload(k: str, name: str) -> str:
        r = await c.post("/v1/files/upload", files={"file": (name, b"Glucose 180", "text/plain")}, data={"user": "u"},
                         headers={"Authorization": f"Bearer {k}"})
        return r.json()["id"]

    mine, sibling, foreign = await upload(key, "lab.txt"), await upload(sibling_key, "x.txt"), \
        await upload(foreign_key, "b.txt")
    ref = {"type": "document", "transfer_method": "local_file"}
    r = await c.post("/v1/workflows/run", headers=h, json={"user": "u", "inputs": {"report": {
        **ref, "upload_file_id": foreign}}})
    assert r.status_code == 400 and r.json()["field"] == "inputs.report.upload_file_id", r.text
    r = await c.post("/v1/workflows/run", headers=h, json={
        "user": "u", "inputs": {"scans": [{**ref, "upload_file_id": mine}, {**ref, "upload_file_id": "nope"}]}})
    assert r.status_code == 400 and r.json()["field"] == "inputs.scans.1.upload_file_id", r.text
    r = await c.post("/v1/workflows/run", headers=h, json={"user": "u", "inputs": {
        "report": {**ref, "upload_file_id": mine}, "scans": [{**ref, "upload_file_id": sibling}]}})
    assert r.status_code == 200, r.text
    sent = orchestrator.requests[-1].inputs
    assert sent["report"]["filename"] == "lab.txt" and sent["report"]["extension"] == "txt"
    assert sent["scans"][0]["filename"] == "x.txt"
