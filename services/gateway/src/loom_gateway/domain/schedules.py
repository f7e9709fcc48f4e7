"""Schedule triggers of workflow apps: a cron expression read in an IANA time zone, stored in
Postgres, fired by whichever gateway replica claims the tick first.

How a tick fires exactly once, whatever the number of replicas:

    each replica, every `poll_s`:  read the schedules whose next_fire_at <= now
    for each:                       UPDATE .. SET next_fire_at = <the next tick after now>
                                    WHERE app_id = .. AND next_fire_at = <the tick it read>
    the replica whose UPDATE changed the row starts the run; the others changed nothing.

Catch-up policy: ticks missed while no gateway ran (or while the app was unpublished) are not
replayed one by one. The first scheduler pass after the downtime fires ONCE for all of them
and moves next_fire_at to the first tick after its clock. A fire is at most once: a replica
that dies between its claim and the run's request loses that tick (logged by the next one).

Time comes from an injectable clock (`now`), so tests step minutes without waiting for them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from croniter import CroniterBadCronError, croniter

from loom_common.logging import get_logger
from loom_gateway.domain.errors import BadRequest, NotFound

log = get_logger(__name__)

Clock = Callable[[], datetime]
MAX_CRON_CHARS = 100


def utcnow() -> datetime:
    return datetime.now(UTC)


def zone(name: str) -> ZoneInfo:
    """An IANA time zone, or a 400 naming `timezone`."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise BadRequest(f"timezone must be an IANA time zone name such as 'Europe/Paris', not {name!r}",
                         field="timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"unknown time zone {name!r}", field="timezone") from None


def next_tick(cron: str, timezone: str, after: datetime) -> datetime:
    """The first tick of `cron`, read in `timezone`, strictly after `after` (as UTC); a 400
    naming `cron` for an expression croniter refuses (five fields; no seconds field)."""
    if not cron or len(cron) > MAX_CRON_CHARS or len(cron.split()) != 5:
        raise BadRequest("cron must be a five-field cron expression (minute hour day month weekday)",
                         field="cron")
    tz = zone(timezone)
    try:
        nxt = croniter(cron, after.astimezone(tz)).get_next(datetime)
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise BadRequest(f"invalid cron expression: {exc}", field="cron") from None
    return nxt.astimezone(UTC)


@dataclass(frozen=True)
class Due:
    """A claimed tick: the schedule's app, and the inputs its run gets."""

    app_id: str
    tenant_id: str
    inputs: dict[str, Any]
    tick: datetime


def _body(r) -> dict:
    return {"cron": r["cron"], "timezone": r["timezone"], "inputs": json.loads(r["inputs"]),
            "enabled": r["enabled"], "next_fire_at": int(r["next_fire_at"].timestamp()),
            "last_fired_at": int(r["last_fired_at"].timestamp()) if r["last_fired_at"] else None,
            "last_run_id": r["last_run_id"], "last_error": r["last_error"]}


class Schedules:
    def __init__(self, pool: asyncpg.Pool, now: Clock = utcnow) -> None:
        self.pool = pool
        self.now = now

    async def put(self, tenant_id: str, app_id: str, *, cron: str, timezone: str, inputs: dict[str, Any],
                  enabled: bool) -> dict:
        """Set the app's schedule (validated); its next tick is counted from now."""
        nxt = next_tick(cron, timezone, self.now())
        row = await self.pool.fetchrow(
            "INSERT INTO app_schedules (app_id, tenant_id, cron, timezone, inputs, enabled, next_fire_at)"
            " SELECT id, tenant_id, $3, $4, $5::jsonb, $6, $7 FROM apps WHERE id = $1 AND tenant_id = $2"
            " ON CONFLICT (app_id) DO UPDATE SET cron = $3, timezone = $4, inputs = $5::jsonb, enabled = $6,"
            " next_fire_at = $7, last_error = NULL, updated_at = now() RETURNING *",
            app_id, tenant_id, cron, timezone, json.dumps(inputs), enabled, nxt)
        if row is None:
            raise NotFound("App not found.", code="app_not_found")
        return _body(row)

    async def get(self, tenant_id: str, app_id: str) -> dict | None:
        row = await self.pool.fetchrow("SELECT * FROM app_schedules WHERE app_id = $1 AND tenant_id = $2",
                                       app_id, tenant_id)
        return _body(row) if row else None

    async def delete(self, tenant_id: str, app_id: str) -> None:
        done = await self.pool.execute("DELETE FROM app_schedules WHERE app_id = $1 AND tenant_id = $2",
                                       app_id, tenant_id)
        if done.endswith(" 0"):
            raise NotFound("The app has no schedule.", code="schedule_not_found")

    async def claim_due(self, limit: int = 50) -> list[Due]:
        """The ticks this caller won (see the module's note): each moved to its next tick."""
        now = self.now()
        rows = await self.pool.fetch(
            "SELECT app_id, tenant_id, cron, timezone, inputs, next_fire_at FROM app_schedules"
            " WHERE enabled AND next_fire_at <= $1 ORDER BY next_fire_at LIMIT $2", now, limit)
        won: list[Due] = []
        for r in rows:
            try:
                nxt = next_tick(r["cron"], r["timezone"], now)
            except BadRequest as exc:  # stored before a rule changed (e.g. a zone dropped from tzdata)
                nxt, error = None, exc.message
            else:
                error = None
            claimed = await self.pool.fetchval(
                "UPDATE app_schedules SET next_fire_at = COALESCE($3, next_fire_at), last_fired_at = $4,"
                " enabled = enabled AND $3::timestamptz IS NOT NULL, last_error = $5"
                " WHERE app_id = $1 AND next_fire_at = $2 AND enabled RETURNING app_id",
                r["app_id"], r["next_fire_at"], nxt, now, error)
            if claimed and nxt is not None:
                won.append(Due(r["app_id"], r["tenant_id"], json.loads(r["inputs"]), r["next_fire_at"]))
        return won

    async def fired(self, app_id: str, run_id: str | None, error: str | None) -> None:
        await self.pool.execute("UPDATE app_schedules SET last_run_id = COALESCE($2, last_run_id), last_error = $3"
                                " WHERE app_id = $1", app_id, run_id, error)


class Scheduler:
    """The loop every gateway replica runs: claim due ticks, start their runs."""

    def __init__(self, schedules: Schedules, fire: Callable[[Due], Awaitable[str]], poll_s: float) -> None:
        self.schedules = schedules
        self.fire = fire  # starts the run, returns its id; raises ApiError when it cannot start
        self.poll_s = poll_s

    async def tick(self) -> list[str]:
        """One pass: the run ids this replica started."""
        started = []
        for due in await self.schedules.claim_due():
            try:
                run_id = await self.fire(due)
            except Exception as exc:  # the tick is spent either way: recorded for the console
                message = getattr(exc, "message", None) or repr(exc)
                log.warning("scheduled run not started", app_id=due.app_id, error=message)
                await self.schedules.fired(due.app_id, None, message)
                continue
            await self.schedules.fired(due.app_id, run_id, None)
            started.append(run_id)
        return started

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # Postgres away a moment: the ticks wait in the table
                log.warning("scheduler pass failed", error=repr(exc))
            await asyncio.sleep(self.poll_s)
