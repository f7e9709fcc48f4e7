"""Rate limits and token quotas shared by every gateway replica, counted in Postgres.

Why Postgres and not NATS KV: the counters need an atomic add-and-read, which
`INSERT .. ON CONFLICT DO UPDATE .. RETURNING` gives, and the gateway already talks to Postgres
on each request (key lookup); admission (limits, both counters, quotas) is one statement.
Windows are fixed: requests per minute per key and per workspace, tokens per UTC day per key
and per workspace. Old windows are deleted by the same sweep as the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from loom_gateway.domain import security
from loom_gateway.domain.errors import NotFound, QuotaExceeded, RateLimited, Unauthorized
from loom_gateway.domain.rbac import Principal, Role


@dataclass(frozen=True)
class Defaults:
    key_rpm: int
    workspace_rpm: int
    workspace_tokens_per_day: int


_BUMP = ("INSERT INTO usage_counters (scope, metric, window_start, value) VALUES ($1, $2, $3, $4)"
         " ON CONFLICT (scope, metric, window_start) DO UPDATE SET value = usage_counters.value + $4"
         " RETURNING value")

# API key admission in one round trip (it is on every API request's path): the key (by the
# digest of its secret) and, for an app key, its app's published version; the configured limits
# (NULL = the service default); this minute's request counters, bumped where a limit applies
# (the workspace's only when the key is within its own, so a key over its limit does not eat its
# workspace's; neither when the request names another workspace, which is refused); and today's
# token use where a quota applies.
#   $1 key digest  $2 minute  $3 day  $4 default key rpm  $5 default workspace rpm
#   $6 default workspace tokens per day  $7 the workspace the request names (NULL: none)
_ADMIT = """
WITH cfg AS (
    SELECT k.id, k.tenant_id, k.kind, k.app_id, a.published_version,
           COALESCE(k.rpm_limit, $4) AS key_rpm, COALESCE(k.tokens_per_day, 0) AS key_tok,
           COALESCE(t.rpm_limit, $5) AS ws_rpm, COALESCE(t.tokens_per_day, $6) AS ws_tok,
           ($7::text IS NULL OR $7 = k.tenant_id) AS counted
    FROM api_keys k JOIN tenants t ON t.id = k.tenant_id LEFT JOIN apps a ON a.id = k.app_id
    WHERE k.key_hash = $1),
key_count AS (
    INSERT INTO usage_counters (scope, metric, window_start, value)
    SELECT 'key:' || cfg.id, 'requests', $2, 1 FROM cfg WHERE cfg.counted AND cfg.key_rpm > 0
    ON CONFLICT (scope, metric, window_start) DO UPDATE SET value = usage_counters.value + 1
    RETURNING value),
ws_count AS (
    INSERT INTO usage_counters (scope, metric, window_start, value)
    SELECT 'tenant:' || cfg.tenant_id, 'requests', $2, 1 FROM cfg
    WHERE cfg.counted AND cfg.ws_rpm > 0 AND NOT EXISTS (SELECT 1 FROM key_count WHERE key_count.value > cfg.key_rpm)
    ON CONFLICT (scope, metric, window_start) DO UPDATE SET value = usage_counters.value + 1
    RETURNING value)
SELECT cfg.*, (SELECT value FROM key_count) AS key_n, (SELECT value FROM ws_count) AS ws_n,
       CASE WHEN cfg.ws_tok > 0 THEN (SELECT value FROM usage_counters WHERE scope = 'tenant:' || cfg.tenant_id
                                      AND metric = 'tokens' AND window_start = $3) END AS ws_used,
       CASE WHEN cfg.key_tok > 0 THEN (SELECT value FROM usage_counters WHERE scope = 'key:' || cfg.id
                                       AND metric = 'tokens' AND window_start = $3) END AS key_used
FROM cfg
"""


class Limits:
    def __init__(self, pool: asyncpg.Pool, defaults: Defaults):
        self.pool = pool
        self.defaults = defaults

    async def admit_key(self, secret: str, named_workspace: str | None = None) -> Principal:
        """The API key a secret is, admitted: one request counted against the key's and its
        workspace's minute. Refused: an unknown key (401), a request naming another workspace
        (404), over either rate limit or a used-up token quota (429)."""
        now = datetime.now(UTC)
        minute = now.replace(second=0, microsecond=0)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        d = self.defaults
        r = await self.pool.fetchrow(_ADMIT, security.digest(secret), minute, day, d.key_rpm, d.workspace_rpm,
                                     d.workspace_tokens_per_day, named_workspace)
        if r is None:
            raise Unauthorized("Access token is invalid")
        if not r["counted"]:  # a key never reaches another workspace
            raise NotFound("Workspace not found.", code="workspace_not_exists")
        retry = 60 - now.second
        if r["key_n"] is not None and r["key_n"] > r["key_rpm"]:
            raise RateLimited(f"Rate limit of {r['key_rpm']} requests per minute exceeded for this key.",
                              retry_after_s=retry)
        if r["ws_n"] is not None and r["ws_n"] > r["ws_rpm"]:
            raise RateLimited(f"Rate limit of {r['ws_rpm']} requests per minute exceeded for this workspace.",
                              retry_after_s=retry)
        for used, limit in ((r["ws_used"], r["ws_tok"]), (r["key_used"], r["key_tok"])):
            if limit and (used or 0) >= limit:
                raise QuotaExceeded(f"Token quota of {limit} per day is used up.",
                                    retry_after_s=int(86400 - (now - day).total_seconds()))
        role = Role.APP_KEY if r["kind"] == "app" else Role.DATASET_KEY
        return Principal(kind=f"{r['kind']}_key", tenant_id=r["tenant_id"], role=role, key_id=r["id"],
                         app_id=r["app_id"], app_version=r["published_version"])

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
