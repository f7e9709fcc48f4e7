"""Rate limits and token quotas shared by every gateway replica, counted in Postgres.

Why Postgres and not NATS KV: the counters need an atomic add-and-read, which
`INSERT .. ON CONFLICT DO UPDATE .. RETURNING` gives, and the gateway already talks to Postgres
on each request (key lookup); admission (limits, both counters, quotas) is one statement.
Windows are fixed: requests per minute per key and per workspace, tokens per UTC day per key
and per workspace. Old windows are deleted by the same sweep as the audit log.

Token quotas are reserved, then settled. A request that spends tokens (a run, a completion)
reserves its budget (`max_tokens`, or the app's) before it starts: admitted while the day's
count (tokens used plus reserved) is below the quota, the reservation is added to the count
in the same statement, so concurrent requests cannot all pass the last tokens left. When it
ends, the reservation is replaced by the tokens it used (`settle`). One request may still end
over the quota, by at most its own budget.

With Redis (optional, `LOOM_REDIS_URL`), admission reads the key from the shared key cache
(key_cache.py), counts the minute in Redis (rate_counters.py) and reserves and settles tokens
there (token_counters.py), with the same rules; when Redis cannot answer, the statements below
admit, count and reserve in Postgres: never open. A run's reservation is recorded in Postgres
either way (`token_reservations`), so that whoever records the run's end settles it once.

A key's limits: a number >= 1, or unlimited. 0 is not "unlimited" (it was); unlimited is
explicit (`null` in the API) and only the workspace's owner may set it (`check_key_limits`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from loom_common.redis_link import RedisDown
from loom_gateway.domain import security
from loom_gateway.domain.errors import BadRequest, Forbidden, NotFound, QuotaExceeded, RateLimited, Unauthorized
from loom_gateway.domain.rbac import Principal, Role
from loom_gateway.store.key_cache import KEY_ROW, KeyCache
from loom_gateway.store.rate_counters import RateCounters
from loom_gateway.store.token_counters import TokenCounters


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
           CASE WHEN k.rpm_unlimited THEN 0 ELSE COALESCE(k.rpm_limit, $4) END AS key_rpm,
           COALESCE(k.tokens_per_day, 0) AS key_tok,
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


# Reserve `$4` tokens of today's quotas for a key and its workspace, each only while that
# scope's count is below its quota (0: no quota, nothing counted). A scope whose count is at or
# over its quota answers no row for it: the caller refuses the request and rolls back.
#   $1 key id  $2 day  $3 default workspace tokens per day  $4 tokens
_RESERVE = """
WITH cfg AS (
    SELECT k.id, k.tenant_id, COALESCE(k.tokens_per_day, 0) AS key_tok, COALESCE(t.tokens_per_day, $3) AS ws_tok
    FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = $1),
key_res AS (
    INSERT INTO usage_counters AS u (scope, metric, window_start, value)
    SELECT 'key:' || cfg.id, 'tokens', $2, $4 FROM cfg WHERE cfg.key_tok > 0
    ON CONFLICT (scope, metric, window_start) DO UPDATE SET value = u.value + $4
        WHERE u.value < (SELECT key_tok FROM cfg)
    RETURNING value),
ws_res AS (
    INSERT INTO usage_counters AS u (scope, metric, window_start, value)
    SELECT 'tenant:' || cfg.tenant_id, 'tokens', $2, $4 FROM cfg WHERE cfg.ws_tok > 0
    ON CONFLICT (scope, metric, window_start) DO UPDATE SET value = u.value + $4
        WHERE u.value < (SELECT ws_tok FROM cfg)
    RETURNING value)
SELECT cfg.key_tok, cfg.ws_tok, cfg.tenant_id, (SELECT count(*) FROM key_res) AS key_ok,
       (SELECT count(*) FROM ws_res) AS ws_ok
FROM cfg
"""


# A request no key makes (a schedule's tick, a webhook call), admitted for its workspace: its
# minute counted where a rate limit applies, and today's tokens read where a quota applies.
#   $1 workspace  $2 minute  $3 day  $4 default workspace rpm  $5 default workspace tokens per day
_ADMIT_WORKSPACE = """
WITH cfg AS (
    SELECT t.id AS tenant_id, COALESCE(t.rpm_limit, $4) AS ws_rpm, COALESCE(t.tokens_per_day, $5) AS ws_tok
    FROM tenants t WHERE t.id = $1),
ws_count AS (
    INSERT INTO usage_counters (scope, metric, window_start, value)
    SELECT 'tenant:' || cfg.tenant_id, 'requests', $2, 1 FROM cfg WHERE cfg.ws_rpm > 0
    ON CONFLICT (scope, metric, window_start) DO UPDATE SET value = usage_counters.value + 1
    RETURNING value)
SELECT cfg.*, (SELECT value FROM ws_count) AS ws_n, NULL::bigint AS key_n, 0 AS key_rpm, 0 AS key_tok,
       NULL::bigint AS key_used,
       CASE WHEN cfg.ws_tok > 0 THEN (SELECT value FROM usage_counters WHERE scope = 'tenant:' || cfg.tenant_id
                                      AND metric = 'tokens' AND window_start = $3) END AS ws_used
FROM cfg
"""

@dataclass(frozen=True)
class Reservation:
    """Tokens held on today's counters for one request, until it settles."""

    key_id: str
    tenant_id: str
    day: datetime        # the UTC day the tokens are held on (settled there, even after midnight)
    tokens: int
    scopes: tuple[str, ...]  # the counters it was added to (only scopes with a quota)


def _quota_used_up(limit: int, day: datetime, now: datetime) -> QuotaExceeded:
    return QuotaExceeded(f"Token quota of {limit} per day is used up.",
                         retry_after_s=int((day + timedelta(days=1) - now).total_seconds()))


def _reservation(principal: Principal, r, day: datetime, tokens: int) -> Reservation:
    """The reservation a row of quotas gives: held on each scope that has a quota (0: unlimited)."""
    scopes = tuple(s for s, limit in ((f"key:{principal.key_id}", r["key_tok"]),
                                      (f"tenant:{r['tenant_id']}", r["ws_tok"])) if limit > 0)
    return Reservation(principal.key_id, r["tenant_id"], day, tokens, scopes)


def _day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def check_key_limits(role: Role, changes: dict[str, int | None]) -> None:
    """A key's new limits, as the API sends them: a number >= 1 sets it, null makes it unlimited
    (the owner only); 0 is refused rather than read as unlimited."""
    for field, value in changes.items():
        if value is None and role != Role.OWNER:
            raise Forbidden(f"Only the workspace owner may make a key's {field} unlimited.", code="owner_only")
        if value is not None and value < 1:
            raise BadRequest(f"{field} must be at least 1 (null = unlimited, owner only)", field=field)


_QUOTAS = """
SELECT k.tenant_id, COALESCE(k.tokens_per_day, 0) AS key_tok, COALESCE(t.tokens_per_day, $2) AS ws_tok
FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = $1
"""

_TOKENS_USED = """
SELECT (SELECT value FROM usage_counters WHERE scope = 'tenant:' || $1 AND metric = 'tokens' AND window_start = $3)
           AS ws_used,
       (SELECT value FROM usage_counters WHERE scope = 'key:' || $2 AND metric = 'tokens' AND window_start = $3)
           AS key_used
"""


class Limits:
    def __init__(self, pool: asyncpg.Pool, defaults: Defaults, *, keys: KeyCache | None = None,
                 counters: RateCounters | None = None):
        self.pool = pool
        self.defaults = defaults
        self.keys = keys  # with counters: Redis is configured
        self.counters = counters
        self.tokens = TokenCounters(counters.link, counters) if counters is not None else None

    async def admit_key(self, secret: str, named_workspace: str | None = None) -> Principal:
        """The API key a secret is, admitted: one request counted against the key's and its
        workspace's minute. Refused: an unknown key (401), a request naming another workspace
        (404), over either rate limit or a used-up token quota (429)."""
        now = datetime.now(UTC)
        minute = now.replace(second=0, microsecond=0)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        digest = security.digest(secret)
        if self.counters is not None and self.keys is not None:
            try:
                return await self._admit_with_redis(digest, named_workspace, now, minute, day)
            except RedisDown:  # counted in Postgres instead, after this process's Redis counts reach it
                await self.counters.flush()
        local = self.keys.local if self.keys is not None else None
        if local is not None:
            row = local.get(digest)
            if row is not None and not _counts_anything(row):  # nothing to count: no round trip
                if named_workspace is not None and named_workspace != row["tenant_id"]:
                    raise NotFound("Workspace not found.", code="workspace_not_exists")
                return _decide({**row, "key_n": None, "ws_n": None, "ws_used": None, "key_used": None}, now, day)
            generation = local.generation
        d = self.defaults
        r = await self.pool.fetchrow(_ADMIT, digest, minute, day, d.key_rpm, d.workspace_rpm,
                                     d.workspace_tokens_per_day, named_workspace)
        if r is None:
            raise Unauthorized("Access token is invalid")
        if local is not None:
            local.put(digest, {k: r[k] for k in _LOCAL_ROW}, generation)
        if not r["counted"]:  # a key never reaches another workspace
            raise NotFound("Workspace not found.", code="workspace_not_exists")
        if self.counters is not None:
            self.counters.counted_in_postgres(r["tenant_id"], r["id"], minute)
        return _decide(r, now, day)

    async def _admit_with_redis(self, digest: str, named_workspace: str | None, now: datetime, minute: datetime,
                                day: datetime) -> Principal:
        """admit_key with the key from the cache and the minute counted in Redis (same rules)."""
        assert self.keys is not None and self.counters is not None
        row = await self.keys.get(digest)
        if row is None:
            found = await self.pool.fetchrow(KEY_ROW, digest)
            if found is None:
                raise Unauthorized("Access token is invalid")
            row = dict(found)
            await self.keys.put(digest, row)
        d = self.defaults
        r = {**row, "key_rpm": 0 if row["rpm_unlimited"] else (row["rpm_limit"] if row["rpm_limit"] is not None
                                                                else d.key_rpm),
             "key_tok": row["key_tokens"] or 0,
             "ws_rpm": row["ws_rpm"] if row["ws_rpm"] is not None else d.workspace_rpm,
             "ws_tok": row["ws_tokens"] if row["ws_tokens"] is not None else d.workspace_tokens_per_day}
        if named_workspace is not None and named_workspace != r["tenant_id"]:
            raise NotFound("Workspace not found.", code="workspace_not_exists")
        r["key_n"], r["ws_n"] = await self.counters.count(r["tenant_id"], r["id"], minute, r["key_rpm"], r["ws_rpm"])
        r["ws_used"] = r["key_used"] = None
        if r["ws_tok"] > 0 or r["key_tok"] > 0:
            key_used, ws_used = await self.tokens.used(r["tenant_id"], r["id"], day)
            used = {"ws_used": ws_used, "key_used": key_used}
            if (r["ws_tok"] > 0 and ws_used is None) or (r["key_tok"] > 0 and key_used is None):
                await self.counters.flush()  # not in Redis (yet): Postgres has it all, this process's part once flushed
                used = await self.pool.fetchrow(_TOKENS_USED, r["tenant_id"], r["id"], day)
            r["ws_used"] = used["ws_used"] if r["ws_tok"] > 0 else None
            r["key_used"] = used["key_used"] if r["key_tok"] > 0 else None
        return _decide(r, now, day)



    async def admit_workspace(self, tenant_id: str) -> None:
        """A trigger's run (schedule, webhook: no key) admitted under its workspace's limits:
        refused (429) over the workspace's rate, or once its day's token quota is used up. Counted
        in Postgres (with Redis too: triggers are rare next to API calls)."""
        now = datetime.now(UTC)
        d = self.defaults
        r = await self.pool.fetchrow(_ADMIT_WORKSPACE, tenant_id, now.replace(second=0, microsecond=0), _day(now),
                                     d.workspace_rpm, d.workspace_tokens_per_day)
        if r is None:
            raise NotFound("Workspace not found.", code="workspace_not_exists")
        _decide({**r, "kind": "app", "id": None, "app_id": None, "published_version": None}, now, _day(now))

    async def reserve(self, principal: Principal, tokens: int, *, run_id: str | None = None) -> Reservation | None:
        """Hold `tokens` of today's quotas for an API key's request, or raise QuotaExceeded.
        None: the key has no quota anywhere (nothing is held; the end is charged as used).
        With `run_id`, the reservation is kept with the run, for whoever records its end."""
        if not principal.key_id or not principal.token_quota:  # no quota: nothing to hold (no round trip)
            return None
        tokens = max(1, tokens)
        now = datetime.now(UTC)
        day = _day(now)
        if self.tokens is not None:
            try:
                return await self._reserve_with_redis(principal, tokens, now, day, run_id)
            except RedisDown:  # reserved in Postgres instead, after this process's Redis changes reach it
                await self.counters.flush()
                self.tokens.changed_in_postgres(principal.tenant_id, principal.key_id, day)
        async with self.pool.acquire() as conn, conn.transaction():
            r = await conn.fetchrow(_RESERVE, principal.key_id, day, self.defaults.workspace_tokens_per_day, tokens)
            if r is None:
                raise Unauthorized("Access token is invalid")
            for limit, ok in ((r["ws_tok"], r["ws_ok"]), (r["key_tok"], r["key_ok"])):
                if limit > 0 and not ok:  # raising rolls the other scope's reservation back
                    raise _quota_used_up(limit, day, now)
            reservation = _reservation(principal, r, day, tokens)
            if run_id is not None:
                await _keep_with_run(conn, run_id, reservation)
        if self.tokens is not None:
            self.tokens.changed_in_postgres(reservation.tenant_id, reservation.key_id, day)
        return reservation

    async def _reserve_with_redis(self, principal: Principal, tokens: int, now: datetime, day: datetime,
                                  run_id: str | None) -> Reservation:
        """reserve, with the day's counts in Redis (same rules; the quotas read from Postgres,
        so that a changed quota is in force at once)."""
        assert self.tokens is not None
        r = await self.pool.fetchrow(_QUOTAS, principal.key_id, self.defaults.workspace_tokens_per_day)
        if r is None:
            raise Unauthorized("Access token is invalid")
        refused = await self.tokens.reserve(r["tenant_id"], principal.key_id, day, r["key_tok"], r["ws_tok"], tokens)
        if refused:
            raise _quota_used_up(r["ws_tok"] if refused == 2 else r["key_tok"], day, now)
        reservation = _reservation(principal, r, day, tokens)
        if run_id is not None:
            try:
                async with self.pool.acquire() as conn:
                    await _keep_with_run(conn, run_id, reservation)
            except BaseException:  # not kept: given back, or no one would ever settle it
                await asyncio.shield(self._settle_held(reservation, 0))
                raise
        return reservation

    async def release_run(self, run_id: str) -> None:
        """A run that never started (its request was refused or failed): its tokens go back."""
        async with self.pool.acquire() as conn, conn.transaction():
            held = await self.settle_run(conn, run_id, 0)
        await self.settle_claimed(held, 0)

    async def settle_run(self, conn: asyncpg.Connection, run_id: str, used: int) -> Reservation | None:
        """A run's end, recorded once (execution.record, inside its transaction): its reservation
        is claimed; without Redis it becomes the tokens used right there, with Redis it is
        returned, for `settle_claimed` once the transaction is committed."""
        if self.tokens is None:
            await settle_run(conn, run_id, used)
            return None
        row = await conn.fetchrow("DELETE FROM token_reservations WHERE run_id = $1"
                                  " RETURNING key_id, tenant_id, day, tokens, scopes", run_id)
        return Reservation(row["key_id"], row["tenant_id"], row["day"], row["tokens"], tuple(row["scopes"])) \
            if row is not None else None

    async def settle_claimed(self, held: Reservation | None, used: int) -> None:
        """settle_run's reservation, after its transaction (with Redis)."""
        if held is not None:
            await self._settle_held(held, used)

    async def settle(self, reservation: Reservation | None, principal: Principal, used: int) -> None:
        """A request's end: its reservation is replaced by the tokens it used (a key without a
        quota is charged as before, so its usage shows)."""
        if reservation is None:
            await self.charge_tokens(principal, used)
        else:
            await self._settle_held(reservation, used)

    async def _settle_held(self, reservation: Reservation, used: int) -> None:
        if self.tokens is not None:
            try:
                key_delta, ws_delta = _settle_deltas(reservation, used)
                await self.tokens.change(reservation.tenant_id, reservation.key_id, reservation.day, key_delta,
                                         ws_delta)
                return
            except RedisDown:  # settled in Postgres; Redis's copy is seeded again when it answers
                self.tokens.changed_in_postgres(reservation.tenant_id, reservation.key_id, reservation.day)
        async with self.pool.acquire() as conn:
            await settle_reservation(conn, reservation, used)
        if self.tokens is not None:
            self.tokens.changed_in_postgres(reservation.tenant_id, reservation.key_id, reservation.day)

    async def charge_tokens(self, principal: Principal, tokens: int) -> None:
        """Add tokens a request used to the key's and the workspace's day."""
        if tokens <= 0:
            return
        day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        if self.tokens is not None:
            try:
                await self.tokens.change(principal.tenant_id, principal.key_id, day, tokens, tokens)
                return
            except RedisDown:
                self.tokens.changed_in_postgres(principal.tenant_id, principal.key_id, day)
        async with self.pool.acquire() as conn:
            if principal.key_id:
                await conn.fetchval(_BUMP, f"key:{principal.key_id}", "tokens", day, tokens)
            await conn.fetchval(_BUMP, f"tenant:{principal.tenant_id}", "tokens", day, tokens)
        if self.tokens is not None:
            self.tokens.changed_in_postgres(principal.tenant_id, principal.key_id, day)

    async def usage(self, scope: str) -> dict:
        day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        tokens = await self.pool.fetchval("SELECT value FROM usage_counters WHERE scope = $1 AND metric = 'tokens'"
                                          " AND window_start = $2", scope, day)
        return {"tokens_today": tokens or 0}

    async def sweep(self) -> None:
        await self.pool.execute("DELETE FROM usage_counters WHERE (metric = 'requests' AND window_start <"
                                " now() - interval '10 minutes') OR window_start < now() - interval '3 days'")
        # Runs no one recorded (the gateway died meanwhile): their reservation lapses with its day.
        await self.pool.execute("DELETE FROM token_reservations WHERE day < now() - interval '3 days'")


# What key_cache.LocalKeys keeps of an _ADMIT row: the key and its limits, defaults applied.
_LOCAL_ROW = ("id", "tenant_id", "kind", "app_id", "published_version", "key_rpm", "key_tok", "ws_rpm", "ws_tok")


def _counts_anything(row: dict) -> bool:
    """Whether admitting this key counts a request or reads today's tokens (then Postgres must)."""
    return row["key_rpm"] > 0 or row["ws_rpm"] > 0 or row["key_tok"] > 0 or row["ws_tok"] > 0


def _decide(r, now: datetime, day: datetime) -> Principal:
    """The admission's answer from the key's limits and its counts (Postgres's or Redis's)."""
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
                     app_id=r["app_id"], app_version=r["published_version"],
                     token_quota=bool(r["key_tok"] or r["ws_tok"]))


def _settle_deltas(reservation: Reservation, used: int) -> tuple[int, int]:
    """The key's and the workspace's change when a reservation becomes the tokens used: a
    counter with a quota held the reservation, one without gets the tokens used."""
    delta = max(0, used) - reservation.tokens
    return tuple(delta if scope in reservation.scopes else max(0, used)  # type: ignore[return-value]
                 for scope in (f"key:{reservation.key_id}", f"tenant:{reservation.tenant_id}"))


async def settle_reservation(conn: asyncpg.Connection, reservation: Reservation, used: int) -> None:
    """Replace a reservation by the tokens used, on the day it was held (in Postgres)."""
    for scope, change in zip((f"key:{reservation.key_id}", f"tenant:{reservation.tenant_id}"),
                             _settle_deltas(reservation, used), strict=True):
        if change:
            await conn.fetchval(_BUMP, scope, "tokens", reservation.day, change)


async def settle_run(conn: asyncpg.Connection, run_id: str, used: int) -> None:
    """A run's end in Postgres alone (no Redis): see Limits.settle_run."""
    row = await conn.fetchrow("DELETE FROM token_reservations WHERE run_id = $1"
                              " RETURNING key_id, tenant_id, day, tokens, scopes", run_id)
    if row is not None:
        await settle_reservation(conn, Reservation(row["key_id"], row["tenant_id"], row["day"], row["tokens"],
                                                   tuple(row["scopes"])), used)


async def _keep_with_run(conn: asyncpg.Connection, run_id: str, reservation: Reservation) -> None:
    await conn.execute("INSERT INTO token_reservations (run_id, key_id, tenant_id, day, tokens, scopes)"
                       " VALUES ($1, $2, $3, $4, $5, $6)", run_id, reservation.key_id, reservation.tenant_id,
                       reservation.day, reservation.tokens, list(reservation.scopes))
