"""The RBAC matrix, walked: every role (and each API key kind) over every gated route answers
403 exactly where `rbac.MATRIX` says no; every route is gated, signed-in-only or marked public;
and a key or user of workspace A reaches nothing of workspace B."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from gateway_testkit import PASSWORD, make_app

from loom_gateway.app import ROUTERS
from loom_gateway.domain.rbac import MEMBER_ROLES, Perm, Role, allowed, matrix_markdown

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]  # a hang fails with a traceback

FAKE_ID = "0190c0de-0000-7000-8000-000000000000"


def gate_of(route: APIRoute) -> Perm | str | None:
    for dep in route.dependant.dependencies:
        if hasattr(dep.call, "__perm__"):
            return dep.call.__perm__
    extra = (route.openapi_extra or {}).get("x-loom-perm")
    return extra


def api_routes() -> list[APIRoute]:
    """Every route of the gateway's routers (FastAPI nests included routers, so walk the modules)."""
    return [r for module in ROUTERS for r in module.router.routes if isinstance(r, APIRoute)]


def gated_routes(app) -> list[tuple[APIRoute, str, Perm]]:
    out = []
    for route in api_routes():
        if isinstance(route, APIRoute):
            perm = gate_of(route)
            if isinstance(perm, Perm):
                for method in sorted(route.methods):
                    out.append((route, method, perm))
    # Deleting the workspace goes last, so the walk keeps its workspace.
    return sorted(out, key=lambda x: x[0].name == "workspace.delete")


def test_every_route_is_gated_or_marked(gateway) -> None:
    admin_paths = {"/healthz", "/readyz", "/metrics"}
    for route in api_routes():
        assert gate_of(route) is not None, f"{route.path} {route.methods} has no permission gate"
    served = set(gateway.rt.http.openapi()["paths"])
    assert served - admin_paths <= {r.path for r in api_routes()}
    assert "| `apps.write` |" in matrix_markdown()


async def _member(c, admin, role: Role) -> dict:
    inv = await c.post(admin.ws("/invitations"), json={"email": f"{role.value}@x.io", "role": role.value},
                       headers=admin.headers)
    joined = await c.post("/console/api/invitations/accept", json={"token": inv.json()["token"], "name": role.value,
                                                                   "password": PASSWORD})
    return {"Authorization": f"Bearer {joined.json()['access_token']}", "X-Workspace-Id": admin.workspace_id}


async def test_rbac_matrix_over_every_route(gateway, admin) -> None:
    c = gateway.client
    app_id, app_key = await make_app(c, admin, "chat")
    ds_key = (await c.post(admin.ws("/dataset-api-keys"), headers=admin.headers)).json()["token"]
    callers = {Role.OWNER: {**admin.headers, "X-Workspace-Id": admin.workspace_id},
               Role.APP_KEY: {"Authorization": f"Bearer {app_key}"},
               Role.DATASET_KEY: {"Authorization": f"Bearer {ds_key}"}}
    for role in MEMBER_ROLES:
        if role != Role.OWNER:
            callers[role] = await _member(c, admin, role)

    checked = 0
    for route, method, perm in gated_routes(gateway.rt.http):
        for role, headers in callers.items():
            if route.name == "workspace.delete" and allowed(role, perm):
                continue  # called once, at the very end
            # Deletes aim at ids that do not exist, so the walk keeps its app and keys.
            target_app = FAKE_ID if method == "DELETE" else app_id
            path = route.path.replace("{workspace_id}", admin.workspace_id).replace("{app_id}", target_app)
            path = re.sub(r"\{[^}]+\}", FAKE_ID, path)
            r = await c.request(method, path, json={}, headers=headers)
            if allowed(role, perm):
                assert r.status_code not in (401, 403, 500), (role, method, path, r.status_code, r.text)
            else:
                assert r.status_code == 403, (role, method, path, r.status_code, r.text)
                assert r.json()["code"] == "forbidden"
            checked += 1
    assert checked > 300
    r = await c.delete(admin.ws(""), headers=admin.headers)
    assert r.status_code == 204


async def test_no_token_and_wrong_kind_of_token(gateway, admin) -> None:
    c = gateway.client
    assert (await c.get(admin.ws("/apps"))).status_code == 401
    assert (await c.get("/v1/datasets", headers=admin.headers)).status_code == 403  # no workspace named
    _, key = await make_app(c, admin, "chat")
    assert (await c.get("/console/api/account", headers={"Authorization": f"Bearer {key}"})).status_code == 403


async def test_tenant_isolation(gateway, admin, orchestrator) -> None:
    """Workspace B's things, seen from workspace A's member, app key and end user: never found."""
    c = gateway.client
    # Workspace B (the admin owns it) with an app, a run, a conversation, a message and a file.
    ws_b = (await c.post("/console/api/workspaces", json={"name": "B"}, headers=admin.headers)).json()["id"]
    b = type(admin)(admin.token, ws_b, admin.account_id)
    b_app, b_key = await make_app(c, b, "chat", "b-app")
    hb = {"Authorization": f"Bearer {b_key}"}
    chat = (await c.post("/v1/chat-messages", json={"inputs": {}, "query": "secret", "user": "u"}, headers=hb)).json()
    b_file = (await c.post("/v1/files/upload", files={"file": ("b.txt", b"b", "text/plain")}, data={"user": "u"},
                           headers=hb)).json()["id"]
    b_wf, b_wf_key = await make_app(c, b, "workflow", "b-wf")
    b_run = (await c.post("/v1/workflows/run", json={"inputs": {}, "user": "u"},
                          headers={"Authorization": f"Bearer {b_wf_key}"})).json()["workflow_run_id"]

    # Workspace A: an editor who is not a member of B, and an app key of A with the same end user name.
    editor = await _member(c, admin, Role.EDITOR)
    _, a_key = await make_app(c, admin, "chat", "a-app")
    _, a_wf_key = await make_app(c, admin, "workflow", "a-wf")
    ha = {"Authorization": f"Bearer {a_key}"}
    editor_console = {"Authorization": editor["Authorization"]}
    bws = f"/console/api/workspaces/{ws_b}"
    for method, path in [("GET", bws), ("GET", f"{bws}/apps"), ("GET", f"{bws}/apps/{b_app}"),
                         ("PATCH", f"{bws}/apps/{b_app}"), ("DELETE", f"{bws}/apps/{b_app}"),
                         ("GET", f"{bws}/apps/{b_app}/export"), ("GET", f"{bws}/apps/{b_wf}/runs"),
                         ("GET", f"{bws}/apps/{b_app}/api-keys"), ("GET", f"{bws}/members")]:
        r = await c.request(method, path, json={}, headers=editor_console)
        assert r.status_code == 404, (method, path, r.status_code)
        r = await c.request(method, path, json={}, headers=ha)  # A's key naming B's workspace
        assert r.status_code == 404, (method, path, r.status_code)
    # A's editor cannot reach B's apps through A's workspace path either.
    r = await c.get(admin.ws(f"/apps/{b_app}"), headers=editor_console)
    assert r.status_code == 404

    conv = chat["conversation_id"]
    assert (await c.get("/v1/messages", params={"user": "u", "conversation_id": conv}, headers=ha)).status_code == 404
    assert (await c.get("/v1/conversations", params={"user": "u"}, headers=ha)).json()["data"] == []
    assert (await c.post(f"/v1/conversations/{conv}/name", json={"name": "x", "user": "u"},
                         headers=ha)).status_code == 404
    assert (await c.request("DELETE", f"/v1/conversations/{conv}", json={"user": "u"}, headers=ha)).status_code == 404
    assert (await c.post(f"/v1/messages/{chat['message_id']}/feedbacks", json={"rating": "like", "user": "u"},
                         headers=ha)).status_code == 404
    assert (await c.post("/v1/chat-messages", json={"query": "q", "user": "u", "conversation_id": conv},
                         headers=ha)).status_code == 404
    assert (await c.post(f"/v1/chat-messages/{chat['task_id']}/stop", json={"user": "u"},
                         headers=ha)).status_code == 404
    assert (await c.get(f"/v1/files/{b_file}/preview", headers=ha)).status_code == 404
    ha_wf = {"Authorization": f"Bearer {a_wf_key}"}
    assert (await c.get(f"/v1/workflows/run/{b_run}", headers=ha_wf)).status_code == 404
    assert (await c.get(f"/v1/runs/{b_run}/events", headers=ha_wf)).status_code == 404
    # And B's records are untouched.
    hb_msgs = (await c.get("/v1/messages", params={"user": "u", "conversation_id": conv}, headers=hb)).json()
    assert hb_msgs["data"][0]["feedback"] is None and hb_msgs["data"][0]["query"] == "secret"
