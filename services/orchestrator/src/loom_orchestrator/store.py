"""Postgres persistence of runs (the orchestrator's own schema)."""

from __future__ import annotations

import asyncpg

from loom_common.events import RunRequested


class PgRunStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record_requested(self, event: RunRequested, trace_id: str | None) -> bool:
        inserted = await self.pool.fetchval(
            """INSERT INTO runs (id, tenant_id, app_id, status, request, trace_id)
               VALUES ($1, $2, $3, 'accepted', $4::jsonb, $5)
               ON CONFLICT (id) DO UPDATE SET deliveries = runs.deliveries + 1, updated_at = now()
               RETURNING (xmax = 0)""",
            event.run_id, event.tenant_id, event.app_id, event.model_dump_json(), trace_id)
        return bool(inserted)

    async def get(self, run_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT * FROM runs WHERE id = $1", run_id)
