"""The app_schedules table: one schedule per workflow app, and the claim of a due tick by a
conditional UPDATE (how a tick fires once across replicas: domain/schedules.py)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from loom_gateway.domain.errors import BadRequest, NotFound
from loom_gateway.domain.schedules import Clock, Due, next_tick, utcnow


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
