"""The gateway's read/write split on a real streaming replica (loom_common.read_replica): run
detail, run logs and conversation history read the replica while it may serve the workspace,
and a run just recorded is read back from the primary, whether this gateway recorded it or
(its marks gone) another one did.

Where a read went is proven by what it returns: with the replica's replay paused, a change
made straight on the primary (no gateway marks it) is absent from the replica's answer."""

from __future__ import annotations

import contextlib
import uuid

import asyncpg
import httpx
import pytest
from gateway_testkit import Console, Gw, make_app

from loom_common.db import _with_database
from loom_common.devstack import infra
from loom_common.testing import eventually
from loom_gateway.app import build
from loom_gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def servers(replicated_postgres):
    return replicated_postgres


@pytest.fixture
async def split_gateway(servers, nats_url, tmp_path, monkeypatch):
    primary, replica = servers
    name = f"gw_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("LOOM_HOME", str(tmp_path / "home"))
    # A lag bound far beyond the test's pauses: the routing rules, not the bound, are under test.
    settings = GatewaySettings(nats_url=nats_url, database_url=_with_database(primary.url(), name),
                               database_read_url=_with_database(replica.url(), name), database_read_max_lag_s=600,
                               log_level="WARNING", inference_addr="127.0.0.1:1", rag_addr="127.0.0.1:1",
                               inference_timeout_s=2.0, rag_timeout_s=2.0, blocking_timeout_s=20.0)
    rt = build(settings)
    await rt.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=rt.http), base_url="http://gw") as client:
        yield Gw(client, rt, settings.database_url, "")
    await rt.stop()


@contextlib.asynccontextmanager
async def paused(replica: infra.EmbeddedPostgres):
    conn = await asyncpg.connect(replica.url("postgres"))
    try:
        await conn.execute("SELECT pg_wal_replay_pause()")
        yield
    finally:
        await conn.execute("SELECT pg_wal_replay_resume()")
        await conn.close()


async def test_reads_use_the_replica_and_a_just_recorded_run_comes_from_the_primary(split_gateway, servers,
                                                                                   orchestrator):
    _, replica = servers
    g, c = split_gateway.rt.http.state.gw, split_gateway.client
    r = await c.post("/console/api/setup", json={"email": "admin@example.com", "name": "Admin",
                                                 "password": "correct horse battery", "workspace_name": "A"})
    assert r.status_code == 201, r.text
    admin = Console(r.json()["access_token"], r.json()["workspace"]["id"], r.json()["account_id"])
    tenant = admin.workspace_id
    _, key = await make_app(c, admin, "workflow")
    h = {"Authorization": f"Bearer {key}"}

    async def run() -> str:
        r = await c.post("/v1/workflows/run", json={"inputs": {}, "user": "u", "response_mode": "blocking"},
                         headers=h)
        assert r.status_code == 200, r.text
        return r.json()["workflow_run_id"]

    async def detail(run_id: str) -> dict:
        r = await c.get(f"/v1/workflows/run/{run_id}", headers=h)
        assert r.status_code == 200, r.text
        return r.json()

    first = await run()
    await eventually(lambda: g.reads.replica_usable(tenant), "the replica has the workspace's writes")
    assert (await detail(first))["total_steps"] == 2

    async with paused(replica):
        # Changed on the primary behind the gateway's back: the replica (paused) still has the
        # old value, and that is what the gateway answers: the read went to the replica.
        await split_gateway.rt.pool.execute("UPDATE runs SET total_steps = 99 WHERE id = $1", first)
        assert (await detail(first))["total_steps"] == 2
        logs = (await c.get("/v1/workflows/logs", headers=h)).json()["data"]
        assert [(log["workflow_run"]["id"], log["workflow_run"]["total_steps"]) for log in logs] == [(first, 2)]

        # A run recorded now is read back at once, from the primary: the replica cannot have it.
        second = await run()
        got = await detail(second)
        assert got["status"] == "succeeded" and got["outputs"] == {"echo": {}} and got["total_steps"] == 2
        # The workspace just wrote: all its reads are the primary's until the replica catches up.
        assert (await detail(first))["total_steps"] == 99
        logs = (await c.get("/v1/workflows/logs", headers=h)).json()["data"]
        assert {log["workflow_run"]["id"] for log in logs} == {first, second}

        # Recorded by another gateway (this one holds no mark): the replica lacks the run, so its
        # detail is read again from the primary rather than answered 404.
        third = await run()
        g.reads._written.clear()
        assert g.reads.replica_usable(tenant)
        got = await detail(third)
        assert got["id"] == third and got["status"] == "succeeded"
        assert (await detail(first))["total_steps"] == 2  # other reads: the (paused) replica again

    await eventually(lambda: g.reads.replica_usable(tenant), "the resumed replica catches up")

    async def replica_current() -> bool:
        return (await detail(first))["total_steps"] == 99

    await eventually(replica_current, "the replica serves the primary's change")
    assert await split_gateway.rt.reads.pool(tenant).fetchval("SELECT pg_is_in_recovery()")


async def test_conversation_history_reads_back_a_fresh_turn(split_gateway, servers, orchestrator):
    _, replica = servers
    g, c = split_gateway.rt.http.state.gw, split_gateway.client
    r = await c.post("/console/api/setup", json={"email": "admin@example.com", "name": "Admin",
                                                 "password": "correct horse battery", "workspace_name": "A"})
    admin = Console(r.json()["access_token"], r.json()["workspace"]["id"], r.json()["account_id"])
    app_id, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    await eventually(lambda: g.reads.replica_usable(app_id), "the replica has the app")
    async with paused(replica):
        r = await c.post("/v1/chat-messages", json={"inputs": {}, "query": "hi", "user": "u1",
                                                    "response_mode": "blocking"}, headers=h)
        assert r.status_code == 200, r.text
        conv = r.json()["conversation_id"]
        convs = (await c.get("/v1/conversations", params={"user": "u1"}, headers=h)).json()["data"]
        assert [x["id"] for x in convs] == [conv]
        history = (await c.get("/v1/messages", params={"user": "u1", "conversation_id": conv},
                               headers=h)).json()["data"]
        assert [(m["query"], m["answer"]) for m in history] == [("hi", "tok0 tok1 tok2 ")]

        # Opened through another gateway (no mark here): the replica has neither the end user nor
        # the conversation, so both reads go on to the primary rather than answer empty or 404.
        g.reads._written.clear()
        assert g.reads.replica_usable(app_id)
        convs = (await c.get("/v1/conversations", params={"user": "u1"}, headers=h)).json()["data"]
        assert [x["id"] for x in convs] == [conv]
        r = await c.get("/v1/messages", params={"user": "u1", "conversation_id": conv}, headers=h)
        assert r.status_code == 200 and [m["query"] for m in r.json()["data"]] == ["hi"], r.text
