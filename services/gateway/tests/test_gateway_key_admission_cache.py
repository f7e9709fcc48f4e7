"""Cached key admission without Redis (store/key_cache.LocalKeys): a key with nothing to count is
admitted from this process's copy, with no Postgres round trip; limits stay exact (a key with
a rate limit is counted by Postgres on every request); a revoke through this replica refuses
the key at once, one through another replica once the copy's bounded lifetime is over; the
copy is off with Redis, whose tombstones reach every replica at once.

The copies' clocks are replaced by counters the tests move: no wall-clock bound."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
import pytest
from gateway_testkit import PASSWORD, Console, make_app

from loom_common.db import _with_database
from loom_gateway.app import build
from loom_gateway.settings import GatewaySettings
from loom_gateway.store import limits as limits_module
from loom_gateway.store.key_cache import KeyCache, LocalKeys

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingPool:
    """The limits' pool, counting the admission statements it runs (everything else passes)."""

    def __init__(self, pool) -> None:
        self.pool, self.admissions = pool, 0

    async def fetchrow(self, query, *args):
        if query is limits_module._ADMIT:
            self.admissions += 1
        return await self.pool.fetchrow(query, *args)

    def __getattr__(self, name):
        return getattr(self.pool, name)


@pytest.fixture
def frozen_minute(monkeypatch):
    """limits.py's `datetime.now` fixed: every request falls in one minute, however slow the box."""
    now = datetime.now(UTC).replace(second=30, microsecond=0)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return now

    monkeypatch.setattr(limits_module, "datetime", Frozen)


@contextlib.asynccontextmanager
async def replicas(nats_url, database_url, tmp_path, monkeypatch, n: int = 1, **settings):
    """`n` gateways on one new database (replicas of the service), each with an ASGI client,
    its admission counted and its local copy's clock under the test's hand."""
    db = _with_database(database_url, f"gw_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("LOOM_HOME", str(tmp_path / "home"))
    s = GatewaySettings(nats_url=nats_url, database_url=db, log_level="WARNING", inference_addr="127.0.0.1:1",
                        rag_addr="127.0.0.1:1", inference_timeout_s=2.0, rag_timeout_s=2.0, **settings)
    started, out = [], []
    try:
        for _ in range(n):
            rt = build(s)
            await rt.start()
            started.append(rt)
            limits = rt.http.state.gw.limits
            limits.pool = CountingPool(limits.pool)
            clock = Clock()
            limits.keys.local.clock = clock
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=rt.http), base_url="http://gw")
            out.append(SimpleNamespace(client=client, limits=limits, clock=clock))
        yield out
    finally:
        for r in out:
            await r.client.aclose()
        for rt in started:
            await rt.stop()


async def console(c: httpx.AsyncClient) -> Console:
    r = await c.post("/console/api/setup", json={"email": "admin@example.com", "name": "Admin",
                                                 "password": PASSWORD, "workspace_name": "A"})
    assert r.status_code == 201, r.text
    return Console(r.json()["access_token"], r.json()["workspace"]["id"], r.json()["account_id"])


async def key_id_of(c: httpx.AsyncClient, admin: Console, app_id: str) -> str:
    return (await c.get(admin.ws(f"/apps/{app_id}/api-keys"), headers=admin.headers)).json()["data"][0]["id"]


async def test_a_key_with_nothing_to_count_is_admitted_from_memory_and_a_revoke_here_refuses_it_at_once(
        nats_url, database_url, tmp_path, monkeypatch, frozen_minute):
    async with replicas(nats_url, database_url, tmp_path, monkeypatch, key_rpm=0, workspace_rpm=0) as (gw,):
        admin = await console(gw.client)
        app_id, key = await make_app(gw.client, admin, "chat")
        h = {"Authorization": f"Bearer {key}"}
        assert (await gw.client.get("/v1/parameters", headers=h)).status_code == 200
        assert gw.limits.pool.admissions == 1
        for _ in range(3):
            assert (await gw.client.get("/v1/parameters", headers=h)).status_code == 200
        assert gw.limits.pool.admissions == 1  # from memory: no round trip
        # Another workspace named with a cached key is still refused.
        r = await gw.client.get("/v1/parameters", headers=h | {"X-Workspace-Id": "another"})
        assert r.status_code == 404 and gw.limits.pool.admissions == 1
        # The copy lapses: Postgres again.
        gw.clock.now += 2.5
        assert (await gw.client.get("/v1/parameters", headers=h)).status_code == 200
        assert gw.limits.pool.admissions == 2
        kid = await key_id_of(gw.client, admin, app_id)
        assert (await gw.client.delete(admin.ws(f"/apps/{app_id}/api-keys/{kid}"), headers=admin.headers)
                ).status_code == 204
        assert (await gw.client.get("/v1/parameters", headers=h)).status_code == 401  # at once, no clock moved


async def test_a_key_given_a_rate_limit_is_counted_in_postgres_on_every_request(
        nats_url, database_url, tmp_path, monkeypatch, frozen_minute):
    async with replicas(nats_url, database_url, tmp_path, monkeypatch, key_rpm=0, workspace_rpm=0) as (gw,):
        admin = await console(gw.client)
        app_id, key = await make_app(gw.client, admin, "chat")
        h = {"Authorization": f"Bearer {key}"}
        assert (await gw.client.get("/v1/parameters", headers=h)).status_code == 200  # cached, unlimited
        kid = await key_id_of(gw.client, admin, app_id)
        r = await gw.client.patch(admin.ws(f"/apps/{app_id}/api-keys/{kid}"), json={"rpm_limit": 2},
                                  headers=admin.headers)
        assert r.is_success, r.text
        before = gw.limits.pool.admissions
        statuses = [(await gw.client.get("/v1/parameters", headers=h)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]  # the new limit in force at once, each request counted
        assert gw.limits.pool.admissions == before + 3


async def test_a_revoke_on_another_replica_is_refused_here_once_the_copy_lapses(
        nats_url, database_url, tmp_path, monkeypatch, frozen_minute):
    async with replicas(nats_url, database_url, tmp_path, monkeypatch, n=2, key_rpm=0, workspace_rpm=0) as (a, b):
        admin = await console(a.client)
        app_id, key = await make_app(a.client, admin, "chat")
        h = {"Authorization": f"Bearer {key}"}
        assert (await b.client.get("/v1/parameters", headers=h)).status_code == 200  # kept by B
        kid = await key_id_of(a.client, admin, app_id)
        assert (await a.client.delete(admin.ws(f"/apps/{app_id}/api-keys/{kid}"), headers=admin.headers)
                ).status_code == 204
        assert (await a.client.get("/v1/parameters", headers=h)).status_code == 401
        # B's copy is within its lifetime (the documented bound) ...
        assert (await b.client.get("/v1/parameters", headers=h)).status_code == 200
        # ... and once it lapses, B asks Postgres and refuses the key.
        b.clock.now += b.limits.keys.local.ttl_s
        assert (await b.client.get("/v1/parameters", headers=h)).status_code == 401


def test_a_row_read_before_a_change_is_not_kept_after_it():
    clock = Clock()
    local = LocalKeys(2.0, clock=clock)
    generation = local.generation  # a request starts reading Postgres
    local.forget(["d1"])            # a revoke commits meanwhile
    local.put("d1", {"id": "k"}, generation)
    assert local.get("d1") is None
    local.put("d1", {"id": "k"}, local.generation)
    assert local.get("d1") == {"id": "k"}
    clock.now += 2.0
    assert local.get("d1") is None


def test_the_copy_is_bounded_and_off_with_redis_or_a_zero_lifetime():
    local = LocalKeys(2.0, max_entries=3, clock=Clock())
    for i in range(5):
        local.put(f"d{i}", {"id": i}, local.generation)
    assert [local.get(f"d{i}") for i in range(5)] == [None, None, {"id": 2}, {"id": 3}, {"id": 4}]
    assert KeyCache(SimpleNamespace(on_recovered=[]), b"s", local_ttl_s=2.0).local is None  # Redis: at once
    assert KeyCache(None, local_ttl_s=0).local is None
    assert KeyCache(None, local_ttl_s=2.0).local is not None
