"""Rate limits and token quotas shared by every gateway replica, counted in Postgres.

Why Postgres and not NATS KV: the counters need an atomic add-and-read, which one
`INSERT .. ON CONFLICT DO UPDATE .. RETURNING` gives in a single round trip, and the gateway
already talks to Postgres on each request (key lookup). Windows are fixed: requests per minute
per key and per workspace, tokens per UTC day per key and per workspace. Old windows are
deleted by the same sweep as the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from loom_gateway.domain.errors import QuotaExceeded, RateLimited
from loom_gateway.domain.rbac import Principal


@dataclass(frozen=True)
class Defaults:
    key_rpm: int
    workspace_rpm: int
    workspace_tokens_per_day: int


_BUMP = ("INSERT INTO usage_counters (scope, metric, window_start, value) VALUES ($1, $2, $3, $4)"
         " ON CONFLICT (scope, metric, window_start) DO UPDATE SET value = usage_counters.value + $4"
         " RETURNING value")


class Limits:
    def __init__(self, pool: asyncpg.Pool, defaults: Defaults):
        self.pool = pool
        self.defaults = defaults

    async def _configured(self, principal: Principal) -> tuple[int, int, int, int]:
        row = await self.pool.fetchrow(
            "SELECT t.rpm_limit AS t_rpm, t.tokens_per_day AS t_tok, k.rpm_limit AS k_rpm,"
            " k.tokens_per_day AS k_tok FROM tenants t LEFT JOIN api_keys k ON k.id = $2 WHERE t.id = $1",
            principal.tenant_id, principal.key_id)
        d = self.defaults
        if row is None:
            return d.key_rpm, 0, d.workspace_rpm, d.workspace_tokens_per_day
        pick = lambda value, default: default if value is None else value  # noqa: E731
        return (pick(row["k_rpm"], d.key_rpm), pick(row["k_tok"], 0), pick(row["t_rpm"], d.workspace_rpm),
                pick(row["t_tok"], d.workspace_tokens_per_day))

    async def admit(self, principal: Principal) -> None:
        """Count one request against the key's and the workspace's minute; refuse over either limit."""
        key_rpm, key_tok, ws_rpm, ws_tok = await self._configured(principal)
        now = datetime.now(UTC)
        minute = now.replace(second=0, microsecond=0)
        retry = 60 - now.second
        async with self.pool.acquire() as conn:
            if principal.key_id and key_rpm:
                n = await conn.fetchval(_BUMP, f"key:{principal.key_id}", "requests", minute, 1)
                if n > key_rpm:
                    raise RateLimited(f"Rate limit of {key_rpm} requests per minute exceeded for this key.",
                                      retry_after_s=retry)
            if ws_rpm:
                n = await conn.fetchval(_BUMP, f"tenant:{principal.tenant_id}", "requests", minute, 1)
                if n > ws_rpm:
                    raise RateLimited(f"Rate limit of {ws_rpm} requests per minute exceeded for this workspace.",
                                      retry_after_s=retry)
            day = now.replace(hour=0, minute=0, second=0, microsecond=0)
            scopes = [(f"tenant:{principal.tenant_id}", ws_tok)]
            if principal.key_id:
                scopes.append((f"key:{principal.key_id}", key_tok))
            for scope, limit in scopes:
                if limit:
                    used = await conn.fetchval("SELECT value FROM usage_counters WHERE scope = $1 AND metric ="
                                               " 'tokens' AND window_start = $2", scope, day) or 0
                    if used >= limit:
                        raise QuotaExceeded(f"Token quota of {limit} per day is used up.",
                                            retry_after_s=int(86400 - (now - day).total_seconds()))

    async def charge_tokens(self, principal: Principal, tokens: int) -> None:
        """Add tokens a request used to the key's and the workspace's day."""
        if tokens <= 0:
            return
        day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        async with self.pool.acquire() as conn:
            if principal.key_id:
                await conn.fetchval(_BUMP, f"key:{principal.key_id}", "tokens", day, tokens)
            await conn.fetchval(_BUMP, f"tenant:{principal.tenant_id}", "tokens", day, tokens)

    async def usage(self, scope: str) -> dict:
        day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        tokens = await self.pool.fetchval("SELECT value FROM usage_counters WHERE scope = $1 AND metric = 'tokens'"
                                          " AND window_start = $2", scope, day)
        return {"tokens_today": tokens or 0}

    async def sweep(self) -> None:
        await self.pool.execute("DELETE FROM usage_counters WHERE (metric = 'requests' AND window_start <"
                                " now() - interval '10 minutes') OR window_start < now() - interval '3 days'")
