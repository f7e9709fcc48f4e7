"""The append-only audit log: console mutations and API key usage, with retention and queries.

Rows are only inserted (a trigger refuses UPDATE); the retention sweep deletes rows older
than each workspace's retention (or the service default). Key usage is recorded once per
key per minute (not per request), so a busy key does not flood the log, unless the workspace
turned it off (`audit_key_usage`); console changes are always recorded.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from loom_gateway.domain.rbac import Principal


@dataclass(frozen=True)
class AuditQuery:
    action: str | None = None
    actor_id: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    before_id: int | None = None   # keyset pagination: rows with smaller ids


class AuditLog:
    def __init__(self, pool: asyncpg.Pool, default_retention_days: int):
        self.pool = pool
        self.default_retention_days = default_retention_days
        self._key_seen: dict[str, float] = {}

    async def record(self, principal: Principal | None, action: str, *, tenant_id: str | None = None,
                     target_type: str | None = None, target_id: str | None = None,
                     detail: dict | None = None, ip: str | None = None) -> None:
        await self.pool.execute(
            "INSERT INTO audit_log (tenant_id, actor_type, actor_id, action, target_type, target_id, detail, ip)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)",
            tenant_id or (principal.tenant_id if principal else None),
            principal.kind if principal else "anonymous", principal.actor_id if principal else None,
            action, target_type, target_id, json.dumps(detail or {}), ip)

    async def key_used(self, principal: Principal, route: str, ip: str | None) -> None:
        """Record API key usage, at most once per key and minute per replica."""
        now = time.monotonic()
        if now - self._key_seen.get(principal.key_id or "", -1e9) < 60:
            return
        self._key_seen[principal.key_id or ""] = now
        recorded = await self.pool.fetchval(
            "WITH used AS (UPDATE api_keys SET last_used_at = now() WHERE id = $1)"
            " SELECT audit_key_usage FROM tenants WHERE id = $2", principal.key_id, principal.tenant_id)
        if recorded is not False:
            await self.record(principal, "api_key.used", target_type="api_key", target_id=principal.key_id,
                              detail={"route": route}, ip=ip)

    async def query(self, tenant_id: str, q: AuditQuery) -> list[dict]:
        rows = await self.pool.fetch(
            "SELECT id, actor_type, actor_id, action, target_type, target_id, detail, ip, at FROM audit_log"
            " WHERE tenant_id = $1 AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR actor_id = $3)"
            " AND ($4::text IS NULL OR target_id = $4) AND ($5::timestamptz IS NULL OR at >= $5)"
            " AND ($6::timestamptz IS NULL OR at < $6) AND ($7::bigint IS NULL OR id < $7)"
            " ORDER BY id DESC LIMIT $8",
            tenant_id, q.action, q.actor_id, q.target_id, q.since, q.until, q.before_id, q.limit)
        return [{"id": r["id"], "actor_type": r["actor_type"], "actor_id": r["actor_id"], "action": r["action"],
                 "target_type": r["target_type"], "target_id": r["target_id"], "detail": json.loads(r["detail"]),
                 "ip": r["ip"], "created_at": int(r["at"].timestamp())} for r in rows]

    async def retention_days(self, tenant_id: str) -> int:
        value = await self.pool.fetchval("SELECT audit_retention_days FROM tenants WHERE id = $1", tenant_id)
        return value or self.default_retention_days

    async def set_retention_days(self, tenant_id: str, days: int) -> None:
        await self.pool.execute("UPDATE tenants SET audit_retention_days = $2 WHERE id = $1", tenant_id, days)

    async def settings(self, tenant_id: str) -> dict:
        """Retention and what is recorded beyond console changes (which always are)."""
        row = await self.pool.fetchrow("SELECT audit_retention_days, audit_key_usage FROM tenants WHERE id = $1",
                                       tenant_id)
        return {"retention_days": (row and row["audit_retention_days"]) or self.default_retention_days,
                "record_key_usage": row["audit_key_usage"] if row else True, "record_console_changes": True}

    async def set_settings(self, tenant_id: str, retention_days: int | None, record_key_usage: bool | None) -> dict:
        await self.pool.execute("UPDATE tenants SET audit_retention_days = COALESCE($2, audit_retention_days),"
                                " audit_key_usage = COALESCE($3, audit_key_usage) WHERE id = $1",
                                tenant_id, retention_days, record_key_usage)
        return await self.settings(tenant_id)

    async def sweep(self) -> int:
        """Delete rows past their workspace's retention; returns how many went."""
        status = await self.pool.execute(
            "DELETE FROM audit_log a USING (SELECT id, COALESCE(audit_retention_days, $1) AS days FROM tenants) t"
            " WHERE a.tenant_id = t.id AND a.at < now() - make_interval(days => t.days)",
            self.default_retention_days)
        return int(status.split()[-1])
