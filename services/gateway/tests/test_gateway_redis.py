"""The gateway with Redis (LOOM_REDIS_URL) on a real Debian `redis-server`, alone and as a
three-node cluster: cached key admission invalidated at once (revoke, key limits, publish),
rate counters counted in Redis with limits.py's rules, a Redis stopped and restarted empty in
the middle of a minute (Postgres counts meanwhile, nothing is admitted past the limit, Redis
starts again from Postgres's count), the Redis counts mirrored to Postgres, and token quotas
reserved and settled in Redis (concurrent completions, two gateways, Redis stopped and
restarted empty, a run's reservation).

The limits' clock is frozen at the test's start, so every request falls in one minute however
slow the machine is."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import redis.asyncio as aioredis
from gateway_testkit import PASSWORD, Console, Gw, make_app, republish

from loom_common.db import _with_database
from loom_common.devstack.redis_server import EmbeddedRedis, redis_binary, start_cluster
from loom_common.testing import eventually
from loom_gateway.app import build
from loom_gateway.settings import GatewaySettings
from loom_gateway.store import limits as limits_module

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180),
              pytest.mark.skipif(redis_binary() is None,
                                 reason="redis-server not installed and apt-get could not install it "
                                        "(make test installs Debian's redis-server package)")]


@pytest.fixture
def redis_server(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory):
    nodes = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield nodes
    for node in nodes:
        node.stop()


@pytest.fixture
def frozen_minute(monkeypatch):
    """limits.py's `datetime.now` fixed at this moment (a minute's counters stay one minute's)."""
    now = datetime.now(UTC).replace(second=30, microsecond=0)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return now

    monkeypatch.setattr(limits_module, "datetime", Frozen)
    return now


@contextlib.asynccontextmanager
async def gateway_with(redis_url: str, nats_url, database_url, tmp_path, monkeypatch, **settings):
    db = _with_database(database_url, f"gw_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("LOOM_HOME", str(tmp_path / "home"))
    # A loaded test machine may take a while to answer: a slow Redis is not what is tested here.
    s = GatewaySettings(nats_url=nats_url, database_url=db, redis_url=redis_url, redis_timeout_s=10.0,
                        log_level="WARNING",
                        inference_addr="127.0.0.1:1", rag_addr="127.0.0.1:1", inference_timeout_s=2.0,
                        rag_timeout_s=2.0, **settings)
    rt = build(s)
    await rt.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=rt.http), base_url="http://gw") as client:
            yield Gw(client, rt, db, "")
    finally:
        await rt.stop()


async def console(c: httpx.AsyncClient) -> Console:
    r = await c.post("/console/api/setup", json={"email": "admin@example.com", "name": "Admin",
                                                 "password": PASSWORD, "workspace_name": "A"})
    assert r.status_code == 201, r.text
    return Console(r.json()["access_token"], r.json()["workspace"]["id"], r.json()["account_id"])


async def key_id_of(c: httpx.AsyncClient, admin: Console, app_id: str) -> str:
    return (await c.get(admin.ws(f"/apps/{app_id}/api-keys"), headers=admin.headers)).json()["data"][0]["id"]


async def postgres_count(gw: Gw, scope: str) -> int:
    return await gw.rt.pool.fetchval("SELECT COALESCE(sum(value), 0) FROM usage_counters WHERE scope = $1"
                                     " AND metric = 'requests'", scope) or 0


async def check_invalidation(gw: Gw) -> None:
    c = gw.client
    admin = await console(c)
    app_id, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    assert (await c.get("/v1/parameters", headers=h)).json()["opening_statement"] == ""
    limits = gw.rt.http.state.gw.limits
    assert await limits.keys.get(limits_module.security.digest(key)) is not None  # admitted from the cache now

    # Publish: the key's next request sees the new version, on every replica (the entry is gone).
    await republish(c, admin, app_id, lambda dsl: dsl["workflow"].setdefault("features", {}).update(
        opening_statement="Hello again"))
    assert (await c.get("/v1/parameters", headers=h)).json()["opening_statement"] == "Hello again"

    # A key's own limit changed: in force from the next request (two made already this minute).
    kid = await key_id_of(c, admin, app_id)
    r = await c.patch(admin.ws(f"/apps/{app_id}/api-keys/{kid}"), json={"rpm_limit": 3}, headers=admin.headers)
    assert r.is_success, r.text
    statuses = [(await c.get("/v1/parameters", headers=h)).status_code for _ in range(2)]
    assert statuses == [200, 429]

    # Revoked: refused at once, although Redis had it cached a moment ago.
    assert (await c.delete(admin.ws(f"/apps/{app_id}/api-keys/{kid}"), headers=admin.headers)).status_code == 204
    r = await c.get("/v1/parameters", headers=h)
    assert r.status_code == 401, r.text


async def test_revoked_key_and_published_app_take_effect_at_once(redis_server, nats_url, database_url, tmp_path,
                                                                 monkeypatch, frozen_minute):
    async with gateway_with(redis_server.url, nats_url, database_url, tmp_path, monkeypatch) as gw:
        await check_invalidation(gw)


@pytest.mark.slow
async def test_redis_cluster_serves_the_cache_and_the_counters(redis_cluster, nats_url, database_url, tmp_path,
                                                               monkeypatch, frozen_minute):
    async with gateway_with(redis_cluster[0].url, nats_url, database_url, tmp_path, monkeypatch) as gw:
        await check_invalidation(gw)
        link = gw.rt.http.state.gw.limits.counters.link
        assert link.cluster  # redis-py's RedisCluster, found by asking the node
        # Keys of many workspaces spread over the three masters' slots.
        counters = gw.rt.http.state.gw.limits.counters
        for i in range(30):
            assert await counters.count(f"t{i}", f"k{i}", frozen_minute, 5, 10) == (1, 1)
        holding = [len(n.cli("--scan", "--pattern", "loom:rl:{t*").split()) for n in redis_cluster]
        assert sum(holding) == 60 and all(holding), holding  # 30 keys' and 30 workspaces' counters


async def test_rate_limit_stays_exact_when_redis_stops_and_restarts_empty(redis_server, nats_url, database_url,
                                                                         tmp_path, monkeypatch, frozen_minute):
    # Flushes to Postgres only when asked: the test decides what Postgres holds at each step.
    async with gateway_with(redis_server.url, nats_url, database_url, tmp_path, monkeypatch,
                            key_rpm=6, workspace_rpm=1000) as gw:
        c = gw.client
        admin = await console(c)
        app_id, key = await make_app(c, admin, "chat")
        h = {"Authorization": f"Bearer {key}"}
        kid = await key_id_of(c, admin, app_id)
        limits = gw.rt.http.state.gw.limits

        async def request() -> int:
            return (await c.get("/v1/parameters", headers=h)).status_code

        assert [await request() for _ in range(2)] == [200, 200]
        probe = aioredis.from_url(redis_server.url, decode_responses=True)
        names = [n async for n in probe.scan_iter(match=f"loom:rl:*key:{kid}:*")]
        assert len(names) == 1 and await probe.get(names[0]) == "2"  # counted in Redis
        await probe.aclose()

        redis_server.stop()  # Redis gone mid-minute: Postgres admits and counts, after the mirror
        assert [await request() for _ in range(2)] == [200, 200]
        assert await postgres_count(gw, f"key:{kid}") == 4

        redis_server.start()  # back, empty (no persistence): seeded from Postgres's 4
        await asyncio.sleep(limits.counters.link.retry_s)  # past the back-off: Redis is asked again
        assert [await request() for _ in range(4)] == [200, 200, 429, 429]  # the 5th and 6th, then refused
        assert await limits.keys.get(limits_module.security.digest(key)) is not None  # Redis in use again
        await limits.counters.flush()
        assert await postgres_count(gw, f"key:{kid}") == 8  # every request counted once

        # Down again with the limit reached: refused from Postgres too (never open).
        redis_server.stop()
        assert await request() == 429


async def test_redis_counts_reach_postgres(redis_server, nats_url, database_url, tmp_path, monkeypatch,
                                           frozen_minute):
    async with gateway_with(redis_server.url, nats_url, database_url, tmp_path, monkeypatch) as gw:
        c = gw.client
        admin = await console(c)
        app_id, key = await make_app(c, admin, "chat")
        kid = await key_id_of(c, admin, app_id)
        for _ in range(3):
            assert (await c.get("/v1/parameters", headers={"Authorization": f"Bearer {key}"})).status_code == 200

        async def mirrored() -> bool:  # by the flusher, in the background
            return await postgres_count(gw, f"key:{kid}") == 3

        await eventually(mirrored, "the Redis counts are mirrored to Postgres")
        assert await postgres_count(gw, f"tenant:{admin.workspace_id}") == 3

        # limits.py's rules, in Redis: a key over its own limit does not eat its workspace's
        # minute; an unlimited key (0) is not counted, its workspace is.
        counters = gw.rt.http.state.gw.limits.counters
        assert await counters.count("tr", "k1", frozen_minute, 1, 10) == (1, 1)
        assert await counters.count("tr", "k1", frozen_minute, 1, 10) == (2, None)
        assert await counters.count("tr", "k2", frozen_minute, 0, 10) == (None, 2)
        assert await counters.count("tr", "k3", frozen_minute, 5, 0) == (1, None)


async def test_a_published_version_is_shared_through_redis(redis_server, nats_url, database_url, tmp_path,
                                                           monkeypatch, frozen_minute):
    async with gateway_with(redis_server.url, nats_url, database_url, tmp_path, monkeypatch) as gw:
        c = gw.client
        admin = await console(c)
        app_id, key = await make_app(c, admin, "chat")
        h = {"Authorization": f"Bearer {key}"}
        assert (await c.get("/v1/parameters", headers=h)).json()["opening_statement"] == ""
        probe = aioredis.from_url(redis_server.url, decode_responses=True)
        entry = json.loads((await probe.get(f"loom:app:{app_id}:v1")).split(".", 1)[1])  # after its HMAC
        await probe.aclose()
        stored = await gw.rt.pool.fetchval("SELECT dsl::text FROM app_versions WHERE app_id = $1", app_id)
        assert json.loads(entry["dsl"]) == json.loads(stored)  # as Postgres holds it (secrets sealed)

        # A replica that has not run the version (no copy in memory) takes Redis's: the row
        # changed behind the gateway's back in Postgres is not what it answers.
        await gw.rt.pool.execute("UPDATE app_versions SET dsl = jsonb_set(dsl, '{workflow,features}',"
                                 " '{\"opening_statement\": \"from postgres\"}') WHERE app_id = $1", app_id)
        assert "from postgres" in await gw.rt.pool.fetchval("SELECT dsl::text FROM app_versions WHERE app_id = $1",
                                                            app_id)
        gw.rt.http.state.gw.apps._published.clear()
        assert (await c.get("/v1/parameters", headers=h)).json()["opening_statement"] == ""


async def test_replicas_share_counts_and_a_revoke_on_one_is_refused_at_once_by_another(
        redis_server, nats_url, database_url, tmp_path, monkeypatch, frozen_minute):
    async with gateway_with(redis_server.url, nats_url, database_url, tmp_path, monkeypatch, key_rpm=3) as a:
        # A second gateway on the same database and Redis: another replica of the service.
        s = a.rt.settings.model_copy()
        b_rt = build(s)
        await b_rt.start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=b_rt.http), base_url="http://gw") as b:
                admin = await console(a.client)
                app_id, key = await make_app(a.client, admin, "chat")
                h = {"Authorization": f"Bearer {key}"}
                assert (await b.get("/v1/parameters", headers=h)).status_code == 200  # cached by B
                assert (await a.client.get("/v1/parameters", headers=h)).status_code == 200  # A: from Redis
                # One minute's count across both: the third request passes, the fourth is refused.
                assert (await b.get("/v1/parameters", headers=h)).status_code == 200
                assert (await a.client.get("/v1/parameters", headers=h)).status_code == 429
                kid = await key_id_of(a.client, admin, app_id)
                r = await b.delete(admin.ws(f"/apps/{app_id}/api-keys/{kid}"), headers=admin.headers)
                assert r.status_code == 204
                assert (await a.client.get("/v1/parameters", headers=h)).status_code == 401
        finally:
            await b_rt.stop()


async def test_entries_written_into_redis_without_the_secret_are_ignored(redis_server, nats_url, database_url,
                                                                         tmp_path, monkeypatch, frozen_minute):
    """Write access to Redis is not a way in: a forged admission for a made-up key, or a forged
    graph for a real app, fails the HMAC and is read as absent (Postgres decides)."""
    async with gateway_with(redis_server.url, nats_url, database_url, tmp_path, monkeypatch) as gw:
        c = gw.client
        admin = await console(c)
        app_id, key = await make_app(c, admin, "chat")
        h = {"Authorization": f"Bearer {key}"}
        assert (await c.get("/v1/parameters", headers=h)).status_code == 200
        probe = aioredis.from_url(redis_server.url, decode_responses=True)
        genuine = await probe.get(f"loom:key:{limits_module.security.digest(key)}")
        row = json.loads(genuine.split(".", 1)[1])
        forged_secret = "app-" + "x" * 32
        name = f"loom:key:{limits_module.security.digest(forged_secret)}"
        await probe.set(name, "0" * 64 + "." + json.dumps(row))  # a real workspace's row, no valid MAC
        assert (await c.get("/v1/parameters", headers={"Authorization": f"Bearer {forged_secret}"})).status_code == 401

        graph = json.loads((await probe.get(f"loom:app:{app_id}:v1")).split(".", 1)[1])
        dsl = json.loads(graph["dsl"])
        dsl["workflow"]["features"] = {"opening_statement": "forged"}
        graph["dsl"] = json.dumps(dsl)
        await probe.set(f"loom:app:{app_id}:v1", "0" * 64 + "." + json.dumps(graph))
        await probe.aclose()
        gw.rt.http.state.gw.apps._published.clear()
        assert (await c.get("/v1/parameters", headers=h)).json()["opening_statement"] == ""


# Token quotas (limits.reserve / settle) counted in Redis: token_counters.py.

def model_stand_in(gw: Gw, used: int = 3):
    """The model's answer held back until `release` is set (a completion holds its reservation
    meanwhile), then `used` tokens: the test is about the gateway's counting, on real Postgres and
    Redis."""
    from loom_gateway.clients.inference import Chunk

    release, entered = asyncio.Event(), []

    async def generate(args, tenant_id):
        entered.append(args.sampling.get("max_tokens"))
        await release.wait()
        yield Chunk(text="hi", model="m", finish_reason="stop", prompt_tokens=used - 1, completion_tokens=1)

    gw.rt.http.state.gw.inference.generate = generate
    return release, entered


def completion(c: httpx.AsyncClient, key: str, max_tokens: int):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens}
    return asyncio.create_task(c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=body))


async def tokens_in_postgres(gw: Gw, scope: str) -> int:
    await gw.rt.http.state.gw.limits.counters.flush()
    return await gw.rt.pool.fetchval("SELECT COALESCE(sum(value), 0) FROM usage_counters WHERE scope = $1"
                                     " AND metric = 'tokens'", scope) or 0


async def tokens_in_redis(url: str, scope: str) -> list[str]:
    probe = aioredis.from_url(url, decode_responses=True)
    try:
        return [await probe.get(n) async for n in probe.scan_iter(match=f"loom:tok:*:{scope}:*")]
    finally:
        await probe.aclose()


async def until_entered(entered: list, n: int) -> None:
    async def arrived() -> bool:
        return len(entered) >= n

    await eventually(arrived, f"{n} completions in the model")


async def test_concurrent_completions_cannot_all_pass_a_token_quota_in_redis(redis_server, nats_url, database_url,
                                                                            tmp_path, monkeypatch, frozen_minute):
    async with gateway_with(redis_server.url, nats_url, database_url, tmp_path, monkeypatch) as gw:
        c = gw.client
        admin = await console(c)
        _, key = await make_app(c, admin, "chat")
        assert (await c.patch(admin.ws(""), json={"tokens_per_day": 1}, headers=admin.headers)).status_code == 200
        release, entered = model_stand_in(gw)
        calls = [completion(c, key, 50) for _ in range(4)]
        pending = set(calls)
        async with asyncio.timeout(60):  # a bound on a hang, not on speed
            while len(pending) > 1:  # three refused while one is in the model, holding its 50
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        assert await tokens_in_redis(redis_server.url, f"tenant:{admin.workspace_id}") == ["50"]
        release.set()
        answers = await asyncio.gather(*calls)
        assert sorted(r.status_code for r in answers) == [200, 429, 429, 429], [r.text for r in answers]
        assert entered == [50]
        # Settled: the unused 47 given back, in Redis and (mirrored) in Postgres.
        assert await tokens_in_redis(redis_server.url, f"tenant:{admin.workspace_id}") == ["3"]
        assert await tokens_in_postgres(gw, f"tenant:{admin.workspace_id}") == 3
        assert (await c.get(admin.ws("/usage"), headers=admin.headers)).json()["tokens_today"] == 3
        assert (await completion(c, key, 50)).status_code == 429  # used up


async def test_token_quota_stays_exact_when_redis_stops_and_restarts_empty(redis_server, nats_url, database_url,
                                                                          tmp_path, monkeypatch, frozen_minute):
    async with gateway_with(redis_server.url, nats_url, database_url, tmp_path, monkeypatch) as gw:
        c = gw.client
        admin = await console(c)
        _, key = await make_app(c, admin, "chat")
        ws = f"tenant:{admin.workspace_id}"
        assert (await c.patch(admin.ws(""), json={"tokens_per_day": 100}, headers=admin.headers)).status_code == 200
        release, entered = model_stand_in(gw, used=10)
        limits = gw.rt.http.state.gw.limits

        held = completion(c, key, 30)  # reserved in Redis: 30
        await until_entered(entered, 1)
        assert await tokens_in_redis(redis_server.url, ws) == ["30"]
        redis_server.stop()  # Redis gone while it runs: settled in Postgres (30 -> 10)
        release.set()
        assert (await held).status_code == 200
        assert await tokens_in_postgres(gw, ws) == 10
        assert (await completion(c, key, 30)).status_code == 200  # reserved and settled in Postgres
        assert await tokens_in_postgres(gw, ws) == 20

        redis_server.start()  # back, empty: seeded from Postgres's 20
        await asyncio.sleep(limits.counters.link.retry_s)  # past the back-off: Redis is asked again
        codes = [(await completion(c, key, 30)).status_code for _ in range(10)]
        assert codes == [200] * 8 + [429] * 2  # 20 + 8 x 10 = 100: the quota, not more
        assert await tokens_in_redis(redis_server.url, ws) == ["100"]
        assert await tokens_in_postgres(gw, ws) == 100  # every change counted once

        redis_server.stop()  # down again with the quota used up: refused from Postgres too (never open)
        assert (await completion(c, key, 30)).status_code == 429


async def test_two_gateways_share_one_token_budget(redis_server, nats_url, database_url, tmp_path, monkeypatch,
                                                  frozen_minute):
    async with gateway_with(redis_server.url, nats_url, database_url, tmp_path, monkeypatch) as a:
        b_rt = build(a.rt.settings.model_copy())
        await b_rt.start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=b_rt.http), base_url="http://gw") as b:
                b_gw = Gw(b, b_rt, a.database_url, "")
                admin = await console(a.client)
                _, key = await make_app(a.client, admin, "chat")
                r = await a.client.patch(admin.ws(""), json={"tokens_per_day": 100}, headers=admin.headers)
                assert r.status_code == 200
                release_a, entered_a = model_stand_in(a)
                release_b, entered_b = model_stand_in(b_gw)
                on_a = completion(a.client, key, 50)
                await until_entered(entered_a, 1)
                on_b = completion(b, key, 50)
                await until_entered(entered_b, 1)
                # 100 held across both replicas: a third request on either is refused.
                assert (await completion(a.client, key, 50)).status_code == 429
                assert (await completion(b, key, 50)).status_code == 429
                release_a.set()
                release_b.set()
                assert [(await on_a).status_code, (await on_b).status_code] == [200, 200]
                # Each gave back its unused 47: 6 used, room again on either replica.
                assert await tokens_in_redis(redis_server.url, f"tenant:{admin.workspace_id}") == ["6"]
                assert (await completion(b, key, 50)).status_code == 200
        finally:
            await b_rt.stop()


async def test_a_runs_reservation_is_kept_in_postgres_and_given_back_through_redis(
        redis_server, nats_url, database_url, tmp_path, monkeypatch, frozen_minute):
    """A run's reservation is recorded in Postgres (whoever records its end claims it once);
    the tokens themselves are held and given back in Redis."""
    from loom_gateway.domain.rbac import Principal, Role

    async with gateway_with(redis_server.url, nats_url, database_url, tmp_path, monkeypatch) as gw:
        c = gw.client
        admin = await console(c)
        app_id, _ = await make_app(c, admin, "chat")
        assert (await c.patch(admin.ws(""), json={"tokens_per_day": 1000}, headers=admin.headers)).status_code == 200
        kid = await key_id_of(c, admin, app_id)
        limits = gw.rt.http.state.gw.limits
        p = Principal("app_key", admin.workspace_id, Role.APP_KEY, key_id=kid, token_quota=True)
        await limits.reserve(p, 256, run_id="run-1")
        assert await tokens_in_redis(redis_server.url, f"tenant:{admin.workspace_id}") == ["256"]
        assert await gw.rt.pool.fetchval("SELECT tokens FROM token_reservations WHERE run_id = 'run-1'") == 256
        await limits.release_run("run-1")
        await limits.release_run("run-1")  # claimed once: the second finds nothing to give back
        assert await tokens_in_redis(redis_server.url, f"tenant:{admin.workspace_id}") == ["0"]
        assert await tokens_in_postgres(gw, f"tenant:{admin.workspace_id}") == 0
