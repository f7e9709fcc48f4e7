"""Pulling a model into the local engine through the console API (`POST .../models/pull`): the
gateway calls inference's PullModel RPC on a real inference process, which downloads `tiny`
from a loopback registry (model_registry.py), and relays the progress as SSE; bad names are
400s naming `model`, before any stream; the pull is audited with its model and outcome; a role
without workspace.manage is refused. Nothing leaves loopback."""

from __future__ import annotations

import json

import pytest
from model_registry import MODEL, TinyRegistry

from loom_common.devstack import infra
from loom_common.testing import ServiceProcess
from loom_gateway.clients.inference import InferenceClient

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def registry(tmp_path):
    r = TinyRegistry(tmp_path)
    yield r
    r.close()


@pytest.fixture
def engine(nats_url, database_url, tmp_path, registry):
    """A real inference process (no model loaded) whose model library is the loopback registry."""
    http_port, grpc_port = infra.free_port(), infra.free_port()
    home = tmp_path / "inference-home"
    home.mkdir()
    env = {"LOOM_NATS_URL": nats_url, "LOOM_DATABASE_URL": database_url, "LOOM_HOME": str(home),
           "LOOM_INFERENCE_HTTP_PORT": str(http_port), "LOOM_INFERENCE_GRPC_PORT": str(grpc_port),
           "LOOM_INFERENCE_LOAD_MODELS_AT_START": "false", "LOOM_INFERENCE_REGISTRY_URL": registry.url,
           "PYTHONUNBUFFERED": "1"}
    proc = ServiceProcess("inference", env, http_port, home / "inference.log").start(120)
    proc.grpc_port = grpc_port  # type: ignore[attr-defined]
    yield proc
    proc.stop()


def _events(text: str) -> list[dict]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


async def test_pull_streams_real_progress_and_is_audited(gateway, admin, engine) -> None:
    c, g = gateway.client, gateway.rt.http.state.gw
    g.inference = InferenceClient(f"127.0.0.1:{engine.grpc_port}", 30)  # the gateway's client, to that process
    try:
        async with c.stream("POST", admin.ws("/models/pull"), json={"model": MODEL}, headers=admin.headers) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            events = _events((await r.aread()).decode())
        progress = [e for e in events if e["event"] == "pull_progress"]
        percents = [e["percent"] for e in progress if e["percent"] is not None]
        assert len(set(percents)) >= 3, events           # a 4 MiB blob read 1 MiB at a time
        assert percents == sorted(percents) and percents[-1] == 100.0
        assert progress[-1]["status"] == "success" and progress[-1]["digest"].startswith("sha256:")
        assert events[-1] == {"event": "pull_finished", "model": MODEL, "status": "success"}
        names = {m["name"] for m in (await c.get(admin.ws("/models"), headers=admin.headers)).json()["data"]}
        assert f"{MODEL}:latest" in names

        audit = (await c.get(admin.ws("/audit-logs"), params={"action": "models.pull"},
                             headers=admin.headers)).json()["data"]
        assert [(a["detail"]["model"], a["detail"]["outcome"]) for a in audit] == [(MODEL, "success")]

        # Bad names: 400 naming the field, before any stream (the gateway's own check, then the engine's).
        for bad in ("", "two words", "tab\tname", "pkg:not_a_catalog_package", "/etc/passwd", "../x.gguf",
                    "no-such-model", "http://127.0.0.1:9/x.gguf", "x" * 2049):  # a loopback URL: refused unasked
            r = await c.post(admin.ws("/models/pull"), json={"model": bad}, headers=admin.headers)
            assert r.status_code == 400 and r.json()["field"] == "model", (bad, r.text)
            assert r.headers["content-type"].startswith("application/json")
    finally:
        await g.inference.close()


async def test_pull_needs_workspace_manage(gateway, admin) -> None:
    c = gateway.client
    r = await c.post(admin.ws("/invitations"), json={"email": "ed@example.com", "role": "editor"},
                     headers=admin.headers)
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    accepted = await c.post("/console/api/invitations/accept", json={"token": token, "name": "Ed",
                                                                     "password": "correct horse battery"})
    editor = {"Authorization": f"Bearer {accepted.json()['access_token']}"}
    r = await c.post(admin.ws("/models/pull"), json={"model": MODEL}, headers=editor)
    assert r.status_code == 403 and "workspace.manage" in r.json()["message"]
