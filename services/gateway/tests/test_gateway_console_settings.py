"""Workspace settings through the console API: model endpoints (sealed keys, SSRF-checked URLs,
a real connection test against a second Loom inference process), file storage (a local `moto`
S3 server: the connection test, then uploads land in the bucket without a restart) and default
models. Every server contacted here is on loopback; non-loopback decisions are made without
connecting."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import asyncpg
import moto_s3
import pytest
from gateway_testkit import make_app

from loom_common.devstack import infra
from loom_common.testing import ServiceProcess
from loom_gateway.clients.inference import InferenceClient
from loom_gateway.domain.errors import ApiError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

API_TOKEN = "inference-test-token-0123456789"


@pytest.fixture
def loopback_allowed(monkeypatch):
    """The operator lets workspace endpoints be on loopback (must come before `gateway`)."""
    monkeypatch.setenv("LOOM_GATEWAY_ENDPOINTS_ALLOW_LOOPBACK", "true")


@pytest.fixture
def inference(nats_url, database_url, tmp_path):
    """A second Loom inference process (no model loaded: its model listing is what is called)."""
    http_port, grpc_port = infra.free_port(), infra.free_port()
    home = tmp_path / "inference-home"
    home.mkdir()
    env = {"LOOM_NATS_URL": nats_url, "LOOM_DATABASE_URL": database_url, "LOOM_HOME": str(home),
           "LOOM_INFERENCE_HTTP_PORT": str(http_port), "LOOM_INFERENCE_GRPC_PORT": str(grpc_port),
           "LOOM_INFERENCE_LOAD_MODELS_AT_START": "false", "LOOM_INFERENCE_API_TOKEN": API_TOKEN,
           "PYTHONUNBUFFERED": "1"}
    proc = ServiceProcess("inference", env, http_port, home / "inference.log").start(120)
    proc.grpc_port = grpc_port  # type: ignore[attr-defined]
    yield proc
    proc.stop()


@pytest.fixture
def s3_server():
    """moto's S3 server on a free loopback port, with a bucket (any key accepted)."""
    server = moto_s3.start()
    yield server.url, server.client
    server.stop()


@pytest.fixture
def s3_checking_keys():
    """The same, checking request signatures: a wrong secret is refused."""
    server = moto_s3.start(check_keys=True)
    yield server
    server.stop()


async def test_endpoint_urls_are_checked_without_connecting(gateway, admin) -> None:
    c = gateway.client
    url = admin.ws("/model-endpoints")

    async def refused(base_url: str, code: str = "invalid_param") -> None:
        r = await c.post(url, json={"name": "x", "kind": "openai", "base_url": base_url}, headers=admin.headers)
        assert r.status_code == 400 and r.json()["field"] == "base_url", (base_url, r.text)
        assert r.json()["code"] == code, (base_url, r.text)

    # Loopback is refused unless the operator allows it (this gateway does not), in any spelling.
    for base in ("http://127.0.0.1:11434/v1", "http://[::1]/v1", "http://[::ffff:127.0.0.1]/v1", "http://2130706433/",
                 "http://169.254.169.254/latest", "http://10.1.2.3/v1", "http://0.0.0.0/"):
        await refused(base, "ssrf_blocked")
    for base in ("ftp://example.com/", "file:///etc/passwd", "http://user:pw@8.8.8.8/v1", "http:///v1"):
        await refused(base)
    r = await c.post(url, json={"name": "x", "kind": "nope", "base_url": "http://8.8.8.8/v1"}, headers=admin.headers)
    assert r.status_code == 400 and r.json()["field"] == "kind"
    r = await c.post(url, json={"name": "x" * 101, "kind": "openai", "base_url": "http://8.8.8.8/v1"},
                     headers=admin.headers)
    assert r.status_code == 400 and r.json()["field"] == "name"
    # A public address is accepted (stored, never contacted here).
    r = await c.post(url, json={"name": "pub", "kind": "openai", "base_url": "http://8.8.8.8:9/v1/"},
                     headers=admin.headers)
    assert r.status_code == 201, r.text
    assert r.json()["base_url"] == "http://8.8.8.8:9/v1"
    r = await c.post(admin.ws("/model-endpoints/test"), json={"kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
                     headers=admin.headers)
    assert r.status_code == 400 and r.json()["code"] == "ssrf_blocked"


@pytest.mark.slow  # a second inference process starts
async def test_model_endpoints_keep_keys_sealed_and_the_test_makes_a_real_call(
        loopback_allowed, gateway, admin, inference) -> None:
    c = gateway.client
    base = f"http://127.0.0.1:{inference.http_port}"
    r = await c.post(admin.ws("/model-endpoints"), json={"name": "second-loom", "kind": "openai",
                                                         "base_url": f"{base}/v1", "api_key": API_TOKEN,
                                                         "models": ["gemma3:270m"]}, headers=admin.headers)
    assert r.status_code == 201, r.text
    endpoint = r.json()
    assert endpoint["api_key_set"] is True and endpoint["api_key_hint"] == "…" + API_TOKEN[-4:]
    again = await c.post(admin.ws("/model-endpoints"), json={"name": "second-loom", "kind": "openai",
                                                             "base_url": f"{base}/v1"}, headers=admin.headers)
    assert again.status_code == 409 and again.json()["field"] == "name"
    listed = await c.get(admin.ws("/model-endpoints"), headers=admin.headers)
    assert API_TOKEN not in listed.text and [e["id"] for e in listed.json()["data"]] == [endpoint["id"]]

    # Sealed at rest: the row holds no plaintext key; the sealing key file is the owner's only.
    conn = await asyncpg.connect(gateway.database_url, server_settings={"search_path": "gateway"})
    try:
        raw = await conn.fetchval("SELECT api_key FROM model_endpoints WHERE id = $1", endpoint["id"])
    finally:
        await conn.close()
    assert raw and API_TOKEN.encode() not in bytes(raw)
    key_file = Path(os.environ["LOOM_HOME"]) / "gateway" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    # The test calls the server with the stored key; a wrong key or path says why it failed.
    ok = (await c.post(admin.ws("/model-endpoints/test"), json={"id": endpoint["id"]}, headers=admin.headers)).json()
    assert ok["ok"] is True and ok["error"] is None and isinstance(ok["models"], list), ok
    bad = (await c.post(admin.ws("/model-endpoints/test"), json={"kind": "openai", "base_url": f"{base}/v1",
                                                                  "api_key": "wrong"}, headers=admin.headers)).json()
    assert bad["ok"] is False and "401" in bad["error"]
    tags = (await c.post(admin.ws("/model-endpoints/test"), json={"kind": "ollama", "base_url": base,
                                                                   "api_key": API_TOKEN}, headers=admin.headers)).json()
    assert tags["ok"] is True, tags  # the same process answers Ollama's /api/tags
    gone = (await c.post(admin.ws("/model-endpoints/test"), json={"kind": "openai",
                                                                   "base_url": f"http://127.0.0.1:{infra.free_port()}"},
                         headers=admin.headers)).json()
    assert gone["ok"] is False and gone["error"].startswith("cannot connect")

    assert (await c.delete(admin.ws(f"/model-endpoints/{endpoint['id']}"), headers=admin.headers)).status_code == 204
    assert (await c.delete(admin.ws(f"/model-endpoints/{endpoint['id']}"), headers=admin.headers)).status_code == 404
    audit = (await c.get(admin.ws("/audit-logs"), params={"action": "model_endpoints.create"},
                         headers=admin.headers)).json()["data"]
    assert len(audit) == 1 and API_TOKEN not in str(audit)


@pytest.mark.slow  # a second inference process starts, and loads its model on the first call
async def test_endpoint_models_are_registered_with_inference_for_their_workspace(
        loopback_allowed, gateway, admin, inference) -> None:
    c = gateway.client
    client = InferenceClient(f"127.0.0.1:{inference.grpc_port}", 120)  # the gateway's client, to that process
    g = gateway.rt.http.state.gw
    unreachable = (await c.get(admin.ws("/models"), headers=admin.headers)).json()  # the fixture's: nothing there
    assert unreachable == {"data": [], "engine_available": False}
    endpoints = g.model_endpoints
    endpoints.registry = g.inference = client
    ws = admin.workspace_id
    try:
        # A model on a server that is down: routed for this workspace (unavailable), unknown to another.
        dead = f"http://127.0.0.1:{infra.free_port()}/v1"
        r = await c.post(admin.ws("/model-endpoints"), json={"name": "down", "kind": "openai", "base_url": dead,
                                                             "models": ["lan-only"]}, headers=admin.headers)
        assert r.status_code == 201 and r.json()["registered"] is True, r.text
        down_id = r.json()["id"]
        listed = (await c.get(admin.ws("/models"), headers=admin.headers)).json()
        assert listed["engine_available"] is True
        names = {(m["name"], m["source"], m["endpoint_name"]) for m in listed["data"]}
        assert {("gemma3:270m", "engine", None), ("lan-only", "endpoint", "down")} <= names
        with pytest.raises(ApiError) as routed:
            await client.complete("lan-only", "hi", max_tokens=1, tenant_id=ws)
        assert routed.value.status in (502, 503), routed.value.message
        with pytest.raises(ApiError) as elsewhere:
            await client.complete("lan-only", "hi", max_tokens=1, tenant_id="another-workspace")
        assert elsewhere.value.status == 404

        # A real model behind the same process's OpenAI API, with its API token as the endpoint's key.
        r = await c.post(admin.ws("/model-endpoints"), json={
            "name": "self", "kind": "openai", "base_url": f"http://127.0.0.1:{inference.http_port}/v1",
            "api_key": API_TOKEN, "models": ["gemma3:270m"]}, headers=admin.headers)
        assert r.json()["registered"] is True
        text, tokens = await client.complete("gemma3:270m", "Say hi", max_tokens=2, tenant_id=ws)
        assert isinstance(text, str) and tokens > 0

        # Deleting an endpoint takes its models back; the periodic sync registers the rest again.
        assert (await c.delete(admin.ws(f"/model-endpoints/{down_id}"), headers=admin.headers)).status_code == 204
        with pytest.raises(ApiError) as removed:
            await client.complete("lan-only", "hi", max_tokens=1, tenant_id=ws)
        assert removed.value.status == 404
        assert await endpoints.sync() == 1
    finally:
        await client.close()


async def test_storage_moves_to_s3_without_a_restart(loopback_allowed, gateway, admin, s3_server) -> None:
    c = gateway.client
    s3_url, s3 = s3_server
    assert (await c.get(admin.ws("/settings/storage"), headers=admin.headers)).json()["backend"] == "local"
    local = await c.post(admin.ws("/settings/storage/test"), json={"backend": "local"}, headers=admin.headers)
    assert local.json() == {"ok": True, "backend": "local", "error": None}

    body = {"backend": "s3", "s3": {"bucket": "loom-files", "prefix": "ws", "endpoint_url": s3_url,
                                    "region": "us-east-1", "access_key_id": "ak", "secret_access_key": "sk-secret"}}
    assert (await c.post(admin.ws("/settings/storage/test"), json=body, headers=admin.headers)).json()["ok"] is True
    missing = {**body, "s3": {**body["s3"], "bucket": "no-such-bucket"}}
    r = (await c.post(admin.ws("/settings/storage/test"), json=missing, headers=admin.headers)).json()
    assert r["ok"] is False and "NoSuchBucket" in r["error"]
    for bad, field in ((["s3", "bucket"], "s3.bucket"), (["s3", "prefix"], "s3.prefix")):
        wrong = {**body, "s3": {**body["s3"], bad[1]: "../x" if bad[1] == "prefix" else "Bad_Bucket"}}
        r = await c.put(admin.ws("/settings/storage"), json=wrong, headers=admin.headers)
        assert r.status_code == 400 and r.json()["field"] == field, r.text
    r = await c.put(admin.ws("/settings/storage"), json={"backend": "s3"}, headers=admin.headers)
    assert r.status_code == 400 and r.json()["field"] == "s3"

    saved = await c.put(admin.ws("/settings/storage"), json=body, headers=admin.headers)
    assert saved.status_code == 200 and "sk-secret" not in saved.text
    assert saved.json()["s3"]["secret_access_key_set"] is True and saved.json()["s3"]["bucket"] == "loom-files"
    # An update without the secret keeps the stored one (the saved settings still test ok).
    kept = {**body, "s3": {k: v for k, v in body["s3"].items() if k != "secret_access_key"}}
    assert (await c.put(admin.ws("/settings/storage"), json=kept, headers=admin.headers)).status_code == 200
    assert (await c.post(admin.ws("/settings/storage/test"), headers=admin.headers)).json()["ok"] is True

    # The next upload goes to the bucket (no restart), and reads back through the API.
    _, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    up = await c.post("/v1/files/upload", files={"file": ("note.txt", b"in the bucket", "text/plain")},
                      data={"user": "u"}, headers=h)
    assert up.status_code == 201, up.text
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="loom-files").get("Contents", [])]
    assert keys == [f"ws/{admin.workspace_id}/{up.json()['id']}.txt"]
    assert (await c.get(f"/v1/files/{up.json()['id']}/preview", headers=h)).content == b"in the bucket"


async def test_storage_with_a_wrong_secret_is_not_saved(loopback_allowed, gateway, admin, s3_checking_keys) -> None:
    c, s3 = gateway.client, s3_checking_keys
    good = {"backend": "s3", "s3": {"bucket": moto_s3.BUCKET, "prefix": "ws", "endpoint_url": s3.url,
                                    "region": moto_s3.REGION, "access_key_id": s3.access_key_id,
                                    "secret_access_key": s3.secret_access_key}}
    wrong = {**good, "s3": {**good["s3"], "secret_access_key": "not-the-secret"}}
    assert (await c.post(admin.ws("/settings/storage/test"), json=good, headers=admin.headers)).json()["ok"] is True
    tested = (await c.post(admin.ws("/settings/storage/test"), json=wrong, headers=admin.headers)).json()
    assert tested["ok"] is False
    assert tested["error"] == "the secret access key does not match the access key ID (SignatureDoesNotMatch)"
    assert (await c.put(admin.ws("/settings/storage"), json=good, headers=admin.headers)).status_code == 200
    r = await c.put(admin.ws("/settings/storage"), json=wrong, headers=admin.headers)
    assert r.status_code == 400 and r.json()["field"] == "s3" and "SignatureDoesNotMatch" in r.json()["message"]
    assert "not-the-secret" not in r.text and s3.secret_access_key not in r.text
    # The stored settings are the good ones still.
    assert (await c.post(admin.ws("/settings/storage/test"), headers=admin.headers)).json()["ok"] is True


async def test_default_models_apply_to_new_apps(gateway, admin) -> None:
    c = gateway.client
    url = admin.ws("/settings/default-models")
    first = (await c.get(url, headers=admin.headers)).json()
    assert first["chat_model_is_default"] is True and first["default_chat_model"]
    r = await c.put(url, json={"default_chat_model": "llama3.2:1b", "default_embedding_model": "nomic-embed"},
                    headers=admin.headers)
    assert r.json()["default_chat_model"] == "llama3.2:1b" and r.json()["embedding_model_is_default"] is False
    app = (await c.post(admin.ws("/apps"), json={"name": "a", "mode": "chat"}, headers=admin.headers)).json()
    draft = (await c.get(admin.ws(f"/apps/{app['id']}/draft"), headers=admin.headers)).json()["dsl"]
    llm = next(n for n in draft["workflow"]["graph"]["nodes"] if n["data"]["type"] == "llm")
    assert llm["data"]["model"]["name"] == "llama3.2:1b"
    # A dataset created without a model gets the workspace's embedding model (rag recorded here).
    asked: list = []

    async def create_dataset(t, name, description, retrieval_model, embedding_model, rule=None):
        asked.append(embedding_model)
        return {"id": "d1"}

    gateway.rt.http.state.gw.rag.create_dataset = create_dataset
    r = await c.post("/v1/datasets", json={"name": "kb"}, headers={**admin.headers, "X-Workspace-Id":
                                                                     admin.workspace_id})
    assert r.status_code == 200 and asked == ["nomic-embed"], r.text
    r = await c.put(url, json={"default_chat_model": None}, headers=admin.headers)
    assert r.json() == first  # a PUT sets both: null is the service default again
    r = await c.put(url, json={"default_chat_model": "m" * 201}, headers=admin.headers)
    assert r.status_code == 400 and r.json()["field"] == "default_chat_model"


async def test_audit_settings_say_what_is_recorded(gateway, admin) -> None:
    c = gateway.client
    url = admin.ws("/audit-settings")
    assert (await c.get(url, headers=admin.headers)).json() == {"retention_days": 90, "record_key_usage": True,
                                                                "record_console_changes": True}
    r = await c.put(url, json={"retention_days": 30}, headers=admin.headers)
    assert r.json()["retention_days"] == 30 and r.json()["record_key_usage"] is True

    async def key_used(key_id: str) -> int:
        rows = (await c.get(admin.ws("/audit-logs"), params={"action": "api_key.used", "target_id": key_id},
                            headers=admin.headers)).json()["data"]
        return len(rows)

    app_id, key = await make_app(c, admin, "chat", "audited")
    await c.get("/v1/info", headers={"Authorization": f"Bearer {key}"})
    first = (await c.get(admin.ws(f"/apps/{app_id}/api-keys"), headers=admin.headers)).json()["data"][0]["id"]
    assert await key_used(first) == 1

    r = await c.put(url, json={"record_key_usage": False}, headers=admin.headers)
    assert r.json() == {"retention_days": 30, "record_key_usage": False, "record_console_changes": True}
    made = await c.post(admin.ws(f"/apps/{app_id}/api-keys"), json={"name": "quiet"}, headers=admin.headers)
    assert (await c.get("/v1/info", headers={"Authorization": f"Bearer {made.json()['token']}"})).status_code == 200
    assert await key_used(made.json()["id"]) == 0
    # Console changes are recorded whatever the setting (this PUT is one).
    changes = (await c.get(admin.ws("/audit-logs"), params={"action": "audit.update_settings"},
                           headers=admin.headers)).json()["data"]
    assert len(changes) == 2
    r = await c.put(url, json={"retention_days": 0}, headers=admin.headers)
    assert r.status_code == 400 and r.json()["field"] == "retention_days"
