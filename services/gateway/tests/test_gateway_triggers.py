"""Triggers of workflow apps, the gateway's side (real NATS and Postgres, the gateway in-process,
the scripted stand-in for the orchestrator): the console's schedule and webhook routes (checked,
audited, the secret shown once), webhook signing (unsigned, wrongly signed, stale, replayed,
oversized: refused), inputs mapped and checked, the run recorded with its source; the schedule's
claim (one replica per tick, catch-up once) on an injectable clock.

The real orchestrators (two workers, a restart) are in test_gateway_triggers_stack.py."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from gateway_testkit import make_app, republish

from loom_common.testing import eventually
from loom_gateway.app import scheduler
from loom_gateway.store import webhooks
from loom_gateway.store.schedules import Schedules

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CITY_FORM = [{"variable": "city", "label": "City", "type": "text-input", "required": True, "max_length": 20}]


def with_city(dsl: dict) -> None:
    start = next(n for n in dsl["workflow"]["graph"]["nodes"] if n["data"]["type"] == "start")
    start["data"]["variables"] = CITY_FORM


async def workflow_app(c, admin) -> str:
    app_id, _ = await make_app(c, admin, "workflow", name="triggered")
    await republish(c, admin, app_id, with_city)
    return app_id


async def _is(value, expected) -> bool:
    return await value == expected


async def requested(orchestrator, run_id: str):
    """The run's request as the (scripted) orchestrator received it from the bus."""
    return await eventually(lambda: next((q for q in orchestrator.requests if q.run_id == run_id), None),
                            f"run {run_id} requested")


def signed(secret: str, body: bytes, ts: int | None = None) -> dict:
    stamp = str(int(time.time()) if ts is None else ts)
    return {"X-Loom-Timestamp": stamp, "X-Loom-Signature": webhooks.signature(secret, stamp, body),
            "Content-Type": "application/json"}


async def test_schedule_config_is_checked_named_and_audited(gateway, admin, orchestrator) -> None:
    c, h = gateway.client, admin.headers
    app_id = await workflow_app(c, admin)
    url = admin.ws(f"/apps/{app_id}/triggers/schedule")
    good = {"cron": "*/5 * * * *", "timezone": "Europe/Paris", "inputs": {"city": "Lyon"}}
    for patch, field in (({"cron": "61 * * * *"}, "cron"), ({"cron": "* * * *"}, "cron"),
                         ({"cron": "@reboot"}, "cron"), ({"timezone": "Mars/Olympus"}, "timezone"),
                         ({"timezone": "../../etc/passwd"}, "timezone"), ({"inputs": {}}, "inputs.city"),
                         ({"inputs": {"city": "x" * 21}}, "inputs.city")):
        r = await c.put(url, json={**good, **patch}, headers=h)
        assert r.status_code == 400 and r.json()["field"] == field, (patch, r.text)
    r = await c.put(url, json=good, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["cron"] == "*/5 * * * *" and body["timezone"] == "Europe/Paris" and body["enabled"]
    assert body["next_fire_at"] > time.time() and body["next_fire_at"] % 300 == 0
    got = (await c.get(admin.ws(f"/apps/{app_id}/triggers"), headers=h)).json()
    assert got["schedule"]["inputs"] == {"city": "Lyon"} and got["webhook"] is None
    audit = (await c.get(admin.ws("/audit-logs"), headers=h)).json()["data"]
    assert any(e["action"] == "triggers.schedule_put" and e["target_id"] == app_id for e in audit)
    # A chat app has no triggers.
    chat_id, _ = await make_app(c, admin, "chat", name="chat")
    r = await c.put(admin.ws(f"/apps/{chat_id}/triggers/schedule"), json=good, headers=h)
    assert r.status_code == 400 and r.json()["code"] == "not_workflow_app"
    assert (await c.delete(url, headers=h)).status_code == 204
    assert (await c.delete(url, headers=h)).status_code == 404
    for method, tail in (("PUT", "/schedule"), ("POST", "/webhook"), ("GET", "")):  # an app not in this workspace
        r = await c.request(method, admin.ws(f"/apps/nope/triggers{tail}"), json=good, headers=h)
        assert r.status_code == 404, (method, r.text)


async def test_signed_webhook_starts_a_run_and_bad_ones_get_401(gateway, admin, orchestrator) -> None:
    c, h = gateway.client, admin.headers
    app_id = await workflow_app(c, admin)
    r = await c.post(admin.ws(f"/apps/{app_id}/triggers/webhook"), headers=h)
    assert r.status_code == 201, r.text
    hook = r.json()
    secret, path = hook["secret"], hook["path"]
    assert secret.startswith("whsec_") and path == f"/v1/webhooks/{hook['id']}"
    listed = (await c.get(admin.ws(f"/apps/{app_id}/triggers"), headers=h)).json()["webhook"]
    assert listed["id"] == hook["id"] and "secret" not in listed and secret not in json.dumps(listed)

    body = json.dumps({"city": "Oslo", "ignored": 1}).encode()
    r = await c.post(path, content=body, headers=signed(secret, body))
    assert r.status_code == 202, r.text
    run_id = r.json()["workflow_run_id"]
    req = await requested(orchestrator, run_id)
    assert req.inputs == {"city": "Oslo"} and req.invoke_from == "webhook" and req.app_id == app_id

    async def recorded() -> dict | None:
        runs = (await c.get(admin.ws(f"/apps/{app_id}/runs"), headers=h)).json()["data"]
        mine = [x for x in runs if x["id"] == run_id]
        return mine[0] if mine and mine[0]["status"] != "running" else None

    run = await eventually(recorded, "the webhook's run recorded as finished")
    assert run["status"] == "succeeded" and run["invoke_from"] == "webhook" and not run["debug"]
    # No key reserved its tokens: the workspace's day count gets what it used (the script's 7), once
    # (the recorder charges it just after the run's end is stored).
    async def tokens_today() -> int:
        return (await c.get(admin.ws("/usage"), headers=h)).json()["tokens_today"]

    await eventually(lambda: _is(tokens_today(), 7), "the webhook run's tokens charged to its workspace")

    # Refused: unsigned, wrong secret, tampered body, stale timestamp, replayed, unknown hook.
    other = json.dumps({"city": "Rome"}).encode()
    cases = {"unsigned": (path, other, {"Content-Type": "application/json"}),
             "wrong secret": (path, other, signed("whsec_wrong", other)),
             "tampered": (path, other, signed(secret, body)),
             "stale": (path, other, signed(secret, other, int(time.time()) - 3600)),
             "future": (path, other, signed(secret, other, int(time.time()) + 3600)),
             "replayed": (path, body, None),
             "unknown hook": ("/v1/webhooks/wh_nope", other, signed(secret, other))}
    first = signed(secret, other)
    r = await c.post(path, content=other, headers=first)
    assert r.status_code == 202
    await requested(orchestrator, r.json()["workflow_run_id"])  # arrived: counted in `before`
    cases["replayed"] = (path, other, first)
    before = len(orchestrator.requests)
    for name, (where, content, headers) in cases.items():
        r = await c.post(where, content=content, headers=headers)
        assert r.status_code == 401 and r.json()["code"] == "invalid_signature", (name, r.text)
    assert len(orchestrator.requests) == before  # none of them started a run

    # Inputs checked against the start node (400 naming the field); bodies bounded; not JSON: 400.
    for content, field in ((b'{"city": 5}', "inputs.city"), (b"{}", "inputs.city"), (b"[1]", "body"),
                           (b"not json", "body")):
        r = await c.post(path, content=content, headers=signed(secret, content))
        assert r.status_code == 400 and r.json()["field"] == field, (content, r.text)
    big = json.dumps({"city": "x" * (gateway.rt.settings.webhook_max_body_bytes + 1)}).encode()
    r = await c.post(path, content=big, headers=signed(secret, big))
    assert r.status_code == 413

    # Blocking: the run's result, as /v1/workflows/run answers it.
    body = json.dumps({"city": "Bern"}).encode()
    r = await c.post(path + "?response_mode=blocking", content=body, headers=signed(secret, body))
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "succeeded" and r.json()["data"]["outputs"] == {"echo": {"city": "Bern"}}

    # Rotation: same URL, the old secret no longer signs.
    r = await c.post(admin.ws(f"/apps/{app_id}/triggers/webhook"), headers=h)
    assert r.json()["path"] == path and r.json()["secret"] != secret
    body = json.dumps({"city": "Kyiv"}).encode()
    assert (await c.post(path, content=body, headers=signed(secret, body))).status_code == 401
    assert (await c.post(path, content=body, headers=signed(r.json()["secret"], body))).status_code == 202
    audit = json.dumps((await c.get(admin.ws("/audit-logs"), headers=h)).json())
    assert "triggers.webhook_make" in audit and secret not in audit
    # Four runs started (and were recorded, blocking or from runs.finished): 4 x 7 tokens, each charged once.
    await eventually(lambda: _is(tokens_today(), 28), "each webhook run's tokens charged once")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def test_two_schedulers_claim_each_tick_once_and_catch_up_once(gateway, admin, orchestrator) -> None:
    c = gateway.client
    app_id = await workflow_app(c, admin)
    g = gateway.rt.http.state.gw
    clock = Clock(datetime(2030, 1, 1, 8, 0, 30, tzinfo=UTC))
    replicas = []
    for _ in range(2):  # two gateway replicas' schedulers on the same table, the same clock
        s = scheduler(g)
        s.schedules = Schedules(g.schedules.pool, now=clock)
        replicas.append(s)
    await replicas[0].schedules.put(admin.workspace_id, app_id, cron="* * * * *", timezone="Asia/Tokyo",
                                    inputs={"city": "Tokyo"}, enabled=True)
    started: list[str] = []
    for minute in range(1, 6):  # five ticks, each claimed by whichever replica wins
        clock.at = datetime(2030, 1, 1, 8, minute, 1, tzinfo=UTC)
        for _ in range(3):  # and every replica passes several times within the minute
            for runs in await asyncio.gather(*(s.tick() for s in replicas)):
                started += runs
    assert len(started) == 5 and len(set(started)) == 5
    clock.at += timedelta(hours=3)  # downtime: 180 missed ticks fire once
    caught = [r for s in replicas for r in await s.tick()]
    assert len(caught) == 1
    assert [r for s in replicas for r in await s.tick()] == []
    row = await g.schedules.get(admin.workspace_id, app_id)
    assert row["last_run_id"] == caught[0] and row["next_fire_at"] == int((clock.at.replace(second=0)
                                                                           + timedelta(minutes=1)).timestamp())
    fired = [await requested(orchestrator, run_id) for run_id in started + caught]
    assert all(q.invoke_from == "schedule" for q in fired)
    assert all(q.inputs == {"city": "Tokyo"} for q in fired)
    # A tick whose run cannot start (here: the form changed, so the stored inputs no longer fit): the tick
    # is spent, no run starts, and the reason is kept for the console.
    await republish(c, admin, app_id, lambda d: next(n for n in d["workflow"]["graph"]["nodes"]
                                                     if n["data"]["type"] == "start")["data"].update(
        variables=[*CITY_FORM, {"variable": "day", "label": "Day", "type": "number", "required": True}]))
    clock.at += timedelta(minutes=1)
    assert [r for s in replicas for r in await s.tick()] == []
    row = await g.schedules.get(admin.workspace_id, app_id)
    assert "day" in row["last_error"]


def test_ticks_follow_the_zone_across_daylight_saving() -> None:
    """02:30 does not exist in Paris on 2026-03-29 (clocks jump 02:00 -> 03:00): croniter moves
    that day's tick to 03:00 local, 01:00 UTC; the day after it is 02:30 local, 00:30 UTC."""
    from loom_gateway.domain.schedules import next_tick

    after = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    first = next_tick("30 2 * * *", "Europe/Paris", after)
    assert first == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert next_tick("30 2 * * *", "Europe/Paris", first) == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)
    assert next_tick("0 9 * * MON-FRI", "UTC", datetime(2026, 12, 5, 12, tzinfo=UTC)) == datetime(
        2026, 12, 7, 9, tzinfo=UTC)  # a Saturday: the next weekday's 09:00


async def test_webhook_runs_count_against_the_workspace_rate(gateway, admin, orchestrator) -> None:
    """No key makes a trigger's run: its workspace's requests-per-minute limit admits it (429 past it)."""
    c, h = gateway.client, admin.headers
    app_id = await workflow_app(c, admin)
    hook = (await c.post(admin.ws(f"/apps/{app_id}/triggers/webhook"), headers=h)).json()
    assert (await c.patch(admin.ws(), json={"rpm_limit": 1}, headers=h)).status_code == 200
    codes, run_ids = [], []
    for city in ("A", "B", "C"):  # a minute's boundary may fall between two of them, not twice
        body = json.dumps({"city": city}).encode()
        r = await c.post(hook["path"], content=body, headers=signed(hook["secret"], body))
        codes.append(r.status_code)
        if r.status_code == 202:
            run_ids.append(r.json()["workflow_run_id"])
        if r.status_code == 429:
            assert r.json()["code"] == "too_many_requests" and "Retry-After" in r.headers
    assert codes.count(202) <= 2 and codes.count(429) >= 1, codes
    for run_id in run_ids:
        await requested(orchestrator, run_id)
    assert len([q for q in orchestrator.requests if q.app_id == app_id]) == codes.count(202) == len(run_ids)
