"""Apps: CRUD in every mode, draft vs published versions, DSL export/import (Loom and Dify
documents), graph validation naming the field, API keys shown once and stored hashed."""

from __future__ import annotations

import asyncpg
import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DIFY_EXPORT = """
app: {name: Dify flow, mode: workflow, icon: "🤖", description: from dify}
kind: app
version: 0.1.5
workflow:
  graph:
    nodes:
      - id: "1"
        data: {type: start, title: Start, variables: [{variable: q, label: q, type: text-input, required: true}]}
      - id: "2"
        data: {type: template-transform, title: T, template: "hi {{ q }}",
               variables: [{variable: q, value_selector: ["1", q]}]}
      - id: "3"
        data: {type: end, title: End, outputs: [{variable: out, value_selector: ["2", output]}]}
    edges:
      - {id: e1, source: "1", target: "2"}
      - {id: e2, source: "2", target: "3"}
  features:
    opening_statement: Ask me anything
    suggested_questions_after_answer: {enabled: true}
    text_to_speech: {enabled: false}
"""


async def test_app_lifecycle_versions_and_dsl(gateway, admin) -> None:
    c, h = gateway.client, admin.headers
    ids = {}
    for mode in ("chat", "chatflow", "workflow", "agent", "completion"):
        r = await c.post(admin.ws("/apps"), json={"name": f"{mode} app", "mode": mode}, headers=h)
        assert r.status_code == 201, r.text
        ids[mode] = r.json()["id"]
    bad = await c.post(admin.ws("/apps"), json={"name": "x", "mode": "nope"}, headers=h)
    assert bad.status_code == 400 and bad.json()["field"] == "mode"
    listed = (await c.get(admin.ws("/apps?limit=2"), headers=h)).json()
    assert listed["total"] == 5 and listed["has_more"] and len(listed["data"]) == 2

    app_id = ids["workflow"]
    draft = (await c.get(admin.ws(f"/apps/{app_id}/draft"), headers=h)).json()["dsl"]
    assert (await c.post(admin.ws(f"/apps/{app_id}/publish"), headers=h)).json() == {"version": 1}
    draft["workflow"]["graph"]["nodes"][0]["data"]["variables"] = [{"variable": "city", "type": "text-input"}]
    saved = await c.put(admin.ws(f"/apps/{app_id}/draft"), json={"dsl": draft}, headers=h)
    assert saved.status_code == 200, saved.text
    published = yaml.safe_load((await c.get(admin.ws(f"/apps/{app_id}/export?version=published"), headers=h)).text)
    assert published["workflow"]["graph"]["nodes"][0]["data"]["variables"] == []  # draft edits are not live
    assert (await c.post(admin.ws(f"/apps/{app_id}/publish"), headers=h)).json() == {"version": 2}
    assert [v["version"] for v in (await c.get(admin.ws(f"/apps/{app_id}/versions"), headers=h)).json()["data"]] \
        == [2, 1]
    v1 = (await c.get(admin.ws(f"/apps/{app_id}/versions/1"), headers=h)).json()["dsl"]  # JSON, for a restore
    v2 = (await c.get(admin.ws(f"/apps/{app_id}/versions/2"), headers=h)).json()["dsl"]
    assert v1["workflow"]["graph"]["nodes"][0]["data"]["variables"] == []
    assert v2["workflow"]["graph"]["nodes"][0]["data"]["variables"][0]["variable"] == "city"
    missing = await c.get(admin.ws(f"/apps/{app_id}/versions/9"), headers=h)
    assert missing.status_code == 404 and missing.json()["code"] == "version_not_exists"
    bad_version = await c.get(admin.ws(f"/apps/{app_id}/versions/latest"), headers=h)
    assert bad_version.status_code == 400 and bad_version.json()["field"] == "version", bad_version.text

    broken = {**draft, "workflow": {"graph": {"nodes": [{"id": "a", "data": {"type": "llm"}}]}}}
    r = await c.put(admin.ws(f"/apps/{app_id}/draft"), json={"dsl": broken}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "dsl.workflow.graph" and "'a'" in r.json()["message"]

    exported = (await c.get(admin.ws(f"/apps/{app_id}/export"), headers=h)).text
    again = await c.post(admin.ws("/apps/import"), json={"data": exported, "name": "copy"}, headers=h)
    assert again.status_code == 201 and again.json()["mode"] == "workflow"
    dify = await c.post(admin.ws("/apps/import"), json={"data": DIFY_EXPORT}, headers=h)
    assert dify.status_code == 201, dify.text
    assert dify.json()["name"] == "Dify flow"
    imported = (await c.get(admin.ws(f"/apps/{dify.json()['id']}/draft"), headers=h)).json()
    assert imported["dsl"]["workflow"]["features"] == {  # the features Loom serves come along
        "opening_statement": "Ask me anything", "suggested_questions_after_answer": {"enabled": True}}
    unsupported = DIFY_EXPORT.replace("template-transform", "datasource")
    r = await c.post(admin.ws("/apps/import"), json={"data": unsupported}, headers=h)
    assert r.status_code == 400 and "datasource" in r.json()["message"]
    r = await c.post(admin.ws("/apps/import"), json={"data": "a: [b"}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "data"


async def test_keys_are_shown_once_and_stored_hashed(gateway, admin) -> None:
    c, h = gateway.client, admin.headers
    app_id = (await c.post(admin.ws("/apps"), json={"name": "a", "mode": "chat"}, headers=h)).json()["id"]
    key = (await c.post(admin.ws(f"/apps/{app_id}/api-keys"), headers=h)).json()
    assert key["token"].startswith("app-") and len(key["token"]) > 30
    listed = (await c.get(admin.ws(f"/apps/{app_id}/api-keys"), headers=h)).json()["data"]
    assert listed[0]["token"] != key["token"] and listed[0]["token"].endswith(key["token"][-4:])
    ds = (await c.post(admin.ws("/dataset-api-keys"), headers=h)).json()
    assert ds["token"].startswith("dataset-")
    conn = await asyncpg.connect(gateway.database_url, server_settings={"search_path": "gateway"})
    try:
        stored = [r["key_hash"] for r in await conn.fetch("SELECT key_hash FROM api_keys")]
    finally:
        await conn.close()
    assert key["token"] not in stored and ds["token"] not in stored and len(stored) == 2
    # Revoked keys stop working at once.
    assert (await c.get("/v1/info", headers={"Authorization": f"Bearer {key['token']}"})).status_code == 200
    assert (await c.delete(admin.ws(f"/apps/{app_id}/api-keys/{key['id']}"), headers=h)).status_code == 204
    assert (await c.get("/v1/info", headers={"Authorization": f"Bearer {key['token']}"})).status_code == 401


async def test_rate_limit_per_key_answers_429(gateway, admin) -> None:
    c, h = gateway.client, admin.headers
    app_id = (await c.post(admin.ws("/apps"), json={"name": "a", "mode": "chat"}, headers=h)).json()["id"]
    key = (await c.post(admin.ws(f"/apps/{app_id}/api-keys"), headers=h)).json()
    r = await c.patch(admin.ws(f"/apps/{app_id}/api-keys/{key['id']}"), json={"rpm_limit": 3}, headers=h)
    assert r.status_code == 200
    kh = {"Authorization": f"Bearer {key['token']}"}
    codes = [(await c.get("/v1/meta", headers=kh)).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    limited = await c.get("/v1/meta", headers=kh)
    assert limited.json()["code"] == "too_many_requests" and int(limited.headers["Retry-After"]) >= 1
    # The key's usage is in the audit log (once per minute), next to console mutations.
    logs = (await c.get(admin.ws("/audit-logs?action=api_key.used"), headers=h)).json()["data"]
    assert logs and logs[0]["target_id"] == key["id"]


async def test_workspace_rate_limit_and_token_quota(gateway, admin) -> None:
    from loom_gateway.domain.rbac import Principal, Role

    c, h = gateway.client, admin.headers
    app_id = (await c.post(admin.ws("/apps"), json={"name": "a", "mode": "chat"}, headers=h)).json()["id"]
    k1, k2 = [(await c.post(admin.ws(f"/apps/{app_id}/api-keys"), headers=h)).json() for _ in range(2)]
    await c.patch(admin.ws(f"/apps/{app_id}/api-keys/{k1['id']}"), json={"rpm_limit": 2}, headers=h)
    assert (await c.patch(admin.ws(""), json={"rpm_limit": 4}, headers=h)).status_code == 200
    codes1 = [(await c.get("/v1/meta", headers={"Authorization": f"Bearer {k1['token']}"})).status_code
              for _ in range(4)]
    # k1's refused requests did not count against the workspace: k2 still gets the other two.
    codes2 = [(await c.get("/v1/meta", headers={"Authorization": f"Bearer {k2['token']}"})) for _ in range(3)]
    assert codes1 == [200, 200, 429, 429]
    assert [r.status_code for r in codes2] == [200, 200, 429] and "workspace" in codes2[2].json()["message"]

    # A used-up daily token quota of the workspace refuses its keys until the next UTC day.
    await c.patch(admin.ws(""), json={"rpm_limit": 0, "tokens_per_day": 10}, headers=h)
    limits = gateway.rt.http.state.gw.limits
    await limits.charge_tokens(Principal("app_key", admin.workspace_id, Role.APP_KEY, key_id=k2["id"]), 9)
    assert (await c.get("/v1/meta", headers={"Authorization": f"Bearer {k2['token']}"})).status_code == 200
    await limits.charge_tokens(Principal("app_key", admin.workspace_id, Role.APP_KEY, key_id=k2["id"]), 1)
    r = await c.get("/v1/meta", headers={"Authorization": f"Bearer {k2['token']}"})
    assert r.status_code == 429 and r.json()["code"] == "quota_exceeded" and int(r.headers["Retry-After"]) > 0


async def test_security_headers_and_cors(gateway) -> None:
    r = await gateway.client.get("/console/api/setup", headers={"Origin": "https://app.example"})
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert r.headers["access-control-allow-origin"] == "*"
    pre = await gateway.client.options("/v1/chat-messages", headers={"Origin": "https://app.example",
                                                                     "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 200
