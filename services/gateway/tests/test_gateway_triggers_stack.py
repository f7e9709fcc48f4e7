"""Schedule triggers with the real orchestrator: two orchestrator worker processes and two
gateway schedulers (replicas) on one NATS and one Postgres, the schedulers on an injectable
clock that steps minutes at once. Each tick starts exactly one run, which one of the workers
runs to its end; the schedule survives a restart of the gateway and of an orchestrator, and
the ticks missed while the gateway was down fire once.

NATS is this test's own: its orchestrators join the durable runs consumer every orchestrator
shares, so on the session's NATS they would take other tests' runs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from gateway_testkit import PASSWORD, Console, make_app, republish
from test_gateway_triggers import with_city

from loom_common.db import _with_database
from loom_common.devstack import infra
from loom_gateway.app import build, scheduler
from loom_gateway.settings import GatewaySettings
from loom_gateway.store.schedules import Schedules

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

TEMPLATE = {"nodes": [{"id": "start", "data": {"type": "start", "variables": []}},
                      {"id": "t", "data": {"type": "template-transform", "template": "Hello {{ city }}!",
                                           "variables": [{"variable": "city", "value_selector": ["start", "city"]}]}},
                      {"id": "end", "data": {"type": "end", "outputs": [{"variable": "greeting",
                                                                         "value_selector": ["t", "output"]}]}}],
            "edges": [{"source": "start", "target": "t"}, {"source": "t", "target": "end"}]}


@pytest.fixture
def nats_url(tmp_path):
    server = infra.EmbeddedNats(tmp_path / "nats").start()
    yield server.url
    server.stop()


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class Replica:
    """One gateway (in-process, ASGI client) whose scheduler runs on the test's clock."""

    def __init__(self, settings: GatewaySettings, clock: Clock) -> None:
        self.rt = build(settings)
        self.clock = clock

    async def __aenter__(self) -> Replica:
        await self.rt.start()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.rt.http), base_url="http://gw")
        self.g = self.rt.http.state.gw
        self.scheduler = scheduler(self.g)
        self.scheduler.schedules = Schedules(self.g.schedules.pool, now=self.clock)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.aclose()
        await self.rt.stop()


async def _finished_runs(client: httpx.AsyncClient, admin: Console, app_id: str, n: int) -> list[dict]:
    """The app's schedule runs once n of them are recorded as finished (read back from their events)."""
    for _ in range(600):
        runs = (await client.get(admin.ws(f"/apps/{app_id}/runs"), params={"invoke_from": "schedule"},
                                 headers=admin.headers)).json()["data"]
        if len(runs) >= n and all(r["status"] != "running" for r in runs):
            return runs
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {n} finished schedule runs, have {runs}")


async def test_a_tick_fires_once_with_two_orchestrators_and_survives_restarts(
        nats_url, database_url, run_service, tmp_path, monkeypatch) -> None:
    db = _with_database(database_url, f"trg_{uuid.uuid4().hex[:10]}")
    monkeypatch.setenv("LOOM_HOME", str(tmp_path / "home"))
    # The gateways' own loops stay off: the test's clock drives their schedulers.
    settings = GatewaySettings(nats_url=nats_url, database_url=db, log_level="WARNING", scheduler_enabled=False,
                               inference_addr="127.0.0.1:1", rag_addr="127.0.0.1:1", blocking_timeout_s=60.0)
    clock = Clock(datetime(2031, 5, 1, 6, 0, 10, tzinfo=UTC))
    env = {"LOOM_DATABASE_URL": db}
    async with Replica(settings, clock) as a, Replica(settings, clock) as b:
        workers = [await asyncio.to_thread(run_service, "orchestrator", env=env) for _ in range(2)]
        r = await a.client.post("/console/api/setup", json={"email": "admin@example.com", "name": "Admin",
                                                            "password": PASSWORD, "workspace_name": "T"})
        body = r.json()
        admin = Console(body["access_token"], body["workspace"]["id"], body["account_id"])
        app_id, _ = await make_app(a.client, admin, "workflow", name="cron")

        def graph(dsl: dict) -> None:
            dsl["workflow"]["graph"] = TEMPLATE
            with_city(dsl)

        await republish(a.client, admin, app_id, graph)
        every_quarter = {"cron": "*/15 * * * *", "timezone": "America/New_York", "inputs": {"city": "Oslo"}}
        r = await a.client.put(admin.ws(f"/apps/{app_id}/triggers/schedule"), headers=admin.headers,
                               json=every_quarter)
        assert r.status_code == 200, r.text
        started: list[str] = []
        for quarter in (1, 2, 3):  # three ticks; both replicas pass several times within each
            clock.at = datetime(2031, 5, 1, 6, 15 * quarter, 2, tzinfo=UTC)
            for _ in range(3):
                for runs in await asyncio.gather(a.scheduler.tick(), b.scheduler.tick()):
                    started += runs
            assert len(started) == quarter, started
        runs = await _finished_runs(a.client, admin, app_id, 3)
        assert sorted(r["id"] for r in runs) == sorted(started)
        assert all(r["status"] == "succeeded" and r["outputs"] == {"greeting": "Hello Oslo!"} for r in runs), runs

        # The orchestrator runs each once: one row per run, whichever worker took it.
        conn = await asyncpg.connect(db)
        try:
            rows = await conn.fetch("SELECT id, status FROM orchestrator.runs WHERE app_id = $1", app_id)
        finally:
            await conn.close()
        assert sorted(r["id"] for r in rows) == sorted(started) and {r["status"] for r in rows} == {"succeeded"}

        # One orchestrator restarts (the other keeps running).
        workers[0].stop()
        workers[0] = await asyncio.to_thread(run_service, "orchestrator", env=env)

    # The gateways restart (both gone, new ones on the same database); 3 h pass meanwhile.
    clock.at += timedelta(hours=3)
    async with Replica(settings, clock) as a2, Replica(settings, clock) as b2:
        caught = [r for runs in await asyncio.gather(a2.scheduler.tick(), b2.scheduler.tick()) for r in runs]
        assert len(caught) == 1  # twelve missed ticks fire once
        assert [r for runs in await asyncio.gather(a2.scheduler.tick(), b2.scheduler.tick()) for r in runs] == []
        runs = await _finished_runs(a2.client, admin, app_id, 4)
        assert {r["id"] for r in runs} == {*started, *caught}
        assert all(r["status"] == "succeeded" for r in runs)
        stored = (await a2.client.get(admin.ws(f"/apps/{app_id}/triggers"), headers=admin.headers)).json()
        assert stored["schedule"]["last_run_id"] == caught[0]
        assert stored["schedule"]["next_fire_at"] == int(datetime(2031, 5, 1, 10, 0, tzinfo=UTC).timestamp())
