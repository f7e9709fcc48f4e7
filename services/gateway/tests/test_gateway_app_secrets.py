"""Secret environment variables of an app (issue 18, point 7): a `normal` member read them in
plain text through DSL export. Now they are sealed in Postgres, masked in drafts, versions and
exports for every reader, kept when a saved draft sends the mask back, and opened only in the
run request the orchestrator gets (here the scripted stand-in, which records it)."""

from __future__ import annotations

import json

import asyncpg
import pytest
import yaml
from gateway_testkit import PASSWORD

from loom_gateway.domain.app_secrets import MASK

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SECRET, NEW_SECRET = "sk-live-0123456789abcdef", "sk-live-rotated-fedcba9876"


def _env(doc: dict) -> dict:
    return {v["name"]: v["value"] for v in doc["workflow"]["graph"]["environment_variables"]}


async def _stored_texts(gateway, app_id: str) -> list[str]:
    conn = await asyncpg.connect(gateway.database_url)
    try:
        draft = await conn.fetchval("SELECT draft::text FROM gateway.apps WHERE id = $1", app_id)
        versions = await conn.fetch("SELECT dsl::text AS dsl FROM gateway.app_versions WHERE app_id = $1", app_id)
    finally:
        await conn.close()
    return [draft, *(r["dsl"] for r in versions)]


async def test_gateway_secret_env_sealed_masked_and_opened_for_runs(gateway, admin, orchestrator) -> None:
    c, h = gateway.client, admin.headers
    app_id = (await c.post(admin.ws("/apps"), json={"name": "w", "mode": "workflow"}, headers=h)).json()["id"]
    draft = (await c.get(admin.ws(f"/apps/{app_id}/draft"), headers=h)).json()["dsl"]
    draft["workflow"]["graph"]["environment_variables"] = [
        {"name": "api_token", "value_type": "secret", "value": SECRET},
        {"name": "region", "value_type": "string", "value": "eu"}]
    saved = await c.put(admin.ws(f"/apps/{app_id}/draft"), json={"dsl": draft}, headers=h)
    assert saved.status_code == 200 and _env(saved.json()["dsl"]) == {"api_token": MASK, "region": "eu"}
    assert (await c.post(admin.ws(f"/apps/{app_id}/publish"), headers=h)).status_code == 200

    # At rest: sealed in the draft and the published version.
    stored = await _stored_texts(gateway, app_id)
    assert len(stored) == 2 and all(SECRET not in text and "loom-sealed:" in text for text in stored)

    # A normal member reads the app, never the secret: draft, export of the draft and the version.
    inv = await c.post(admin.ws("/invitations"), json={"email": "nora@example.com", "role": "normal"}, headers=h)
    joined = await c.post("/console/api/invitations/accept", json={"token": inv.json()["token"], "name": "Nora",
                                                                   "password": PASSWORD})
    normal = {"Authorization": f"Bearer {joined.json()['access_token']}"}
    seen = [(await c.get(admin.ws(f"/apps/{app_id}/draft"), headers=normal)).text]
    for version in ("draft", "published", "1"):
        export = await c.get(admin.ws(f"/apps/{app_id}/export"), params={"version": version}, headers=normal)
        assert export.status_code == 200, export.text
        assert _env(yaml.safe_load(export.text))["api_token"] == MASK
        seen.append(export.text)
    assert all(SECRET not in text and "loom-sealed" not in text for text in seen)

    # The console saves what it read (the mask) with another change: the stored secret stays.
    masked = (await c.get(admin.ws(f"/apps/{app_id}/draft"), headers=h)).json()["dsl"]
    masked["workflow"]["graph"]["environment_variables"][1]["value"] = "us"
    assert (await c.put(admin.ws(f"/apps/{app_id}/draft"), json={"dsl": masked}, headers=h)).status_code == 200
    assert (await c.post(admin.ws(f"/apps/{app_id}/publish"), headers=h)).status_code == 200
    key = (await c.post(admin.ws(f"/apps/{app_id}/api-keys"), json={"name": "k"}, headers=h)).json()["token"]
    run = await c.post("/v1/workflows/run", headers={"Authorization": f"Bearer {key}"},
                       json={"inputs": {}, "user": "u1", "response_mode": "blocking"})
    assert run.status_code == 200, run.text
    assert _env({"workflow": {"graph": orchestrator.requests[-1].graph}}) == {"api_token": SECRET, "region": "us"}

    # A new value replaces it; the run gets the new one, readers still the mask.
    masked["workflow"]["graph"]["environment_variables"][0]["value"] = NEW_SECRET
    assert (await c.put(admin.ws(f"/apps/{app_id}/draft"), json={"dsl": masked}, headers=h)).status_code == 200
    assert (await c.post(admin.ws(f"/apps/{app_id}/publish"), headers=h)).status_code == 200
    await c.post("/v1/workflows/run", headers={"Authorization": f"Bearer {key}"},
                 json={"inputs": {}, "user": "u1", "response_mode": "blocking"})
    assert _env({"workflow": {"graph": orchestrator.requests[-1].graph}})["api_token"] == NEW_SECRET
    assert all(NEW_SECRET not in text for text in await _stored_texts(gateway, app_id))


async def test_gateway_secret_env_import_sealed_and_unknown_mask_refused(gateway, admin) -> None:
    c, h = gateway.client, admin.headers
    app_id = (await c.post(admin.ws("/apps"), json={"name": "w", "mode": "workflow"}, headers=h)).json()["id"]
    doc = (await c.get(admin.ws(f"/apps/{app_id}/draft"), headers=h)).json()["dsl"]
    doc["workflow"]["graph"]["environment_variables"] = [{"name": "token", "value_type": "secret", "value": SECRET}]
    imported = await c.post(admin.ws("/apps/import"), json={"data": yaml.safe_dump(doc), "name": "copy"}, headers=h)
    assert imported.status_code == 201, imported.text
    new_id = imported.json()["id"]
    assert all(SECRET not in text for text in await _stored_texts(gateway, new_id))
    export = (await c.get(admin.ws(f"/apps/{new_id}/export"), headers=h)).text
    assert SECRET not in export and MASK in export

    # The mask under a name that holds no secret: nothing to keep, so it is refused, naming it.
    doc["workflow"]["graph"]["environment_variables"] = [{"name": "other", "value_type": "secret", "value": MASK}]
    r = await c.put(admin.ws(f"/apps/{app_id}/draft"), json={"dsl": doc}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "dsl.workflow.graph.environment_variables.other"


async def test_gateway_secrets_stored_before_sealing_are_sealed_at_start(gateway, admin, orchestrator) -> None:
    """An upgrade: a draft and a version that hold a secret in plain text (written before sealing
    existed) are sealed by the start-up pass; runs still get the value."""
    c, h = gateway.client, admin.headers
    app_id = (await c.post(admin.ws("/apps"), json={"name": "old", "mode": "workflow"}, headers=h)).json()["id"]
    assert (await c.post(admin.ws(f"/apps/{app_id}/publish"), headers=h)).status_code == 200
    conn = await asyncpg.connect(gateway.database_url)
    try:
        legacy = json.dumps([{"name": "token", "value_type": "secret", "value": SECRET}])
        for table, col in (("apps", "draft"), ("app_versions", "dsl")):
            await conn.execute(f"UPDATE gateway.{table} SET {col} = jsonb_set({col},"
                               f" '{{workflow,graph,environment_variables}}', $2::jsonb)"
                               f" WHERE {'id' if table == 'apps' else 'app_id'} = $1", app_id, legacy)
    finally:
        await conn.close()
    assert all(SECRET in text for text in await _stored_texts(gateway, app_id))

    apps = gateway.rt.http.state.gw.apps
    assert await apps.seal_stored_secrets() == 2
    assert await apps.seal_stored_secrets() == 0   # idempotent
    assert all(SECRET not in text and "loom-sealed:" in text for text in await _stored_texts(gateway, app_id))
    key = (await c.post(admin.ws(f"/apps/{app_id}/api-keys"), json={"name": "k"}, headers=h)).json()["token"]
    run = await c.post("/v1/workflows/run", headers={"Authorization": f"Bearer {key}"},
                       json={"inputs": {}, "user": "u1", "response_mode": "blocking"})
    assert run.status_code == 200, run.text
    assert _env({"workflow": {"graph": orchestrator.requests[-1].graph}}) == {"token": SECRET}
