"""Requests-per-minute counters in Redis (optional), exact across the gateway's replicas and
never open when Redis fails. The rules are limits.py's, unchanged: a key's minute is counted
where its limit applies; its workspace's only when the key is within its own limit.

Postgres stays the record (`usage_counters`); Redis takes the per-request work off it:

    count     one Lua script per admission adds the key's and the workspace's request (both
              counters share the workspace's hash tag: one cluster slot, one round trip).
    seed      a counter Redis does not hold yet (a new minute, or a Redis that restarted empty)
              starts from Postgres's value for that minute, so what was counted there is kept.
    mirror    every count made in Redis is added to Postgres too, in batches off the request
              path (`flush`, every `flush_s`): Postgres lags by at most one batch.
    fallback  Redis down: this process flushes its batch, then admits with the Postgres
              statement (limits._ADMIT), which counts there. Redis back: the counters of the
              minutes counted in Postgres meanwhile are dropped from Redis before anything else,
              so they are seeded again from Postgres, which holds both parts.

The same batch carries the token counters' changes (token_counters.py), and `stale_in_redis`
marks their counters too.

Across replicas the only gap is another replica's unflushed batch at the moment Redis fails
(at most `flush_s` of its requests); one replica alone is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import datetime

import asyncpg

from loom_common.logging import get_logger
from loom_common.redis_link import Client, RedisLink

log = get_logger(__name__)

# KEYS: the key's counter, the workspace's. ARGV: key limit, workspace limit (0: no limit, not
# counted), expiry (s), seeded ("1": ARGV 5 and 6 are Postgres's counts for absent counters).
# Returns {key count, workspace count} (0: not counted) or {-1, -1}: seed first.
_COUNT = """
local key_rpm, ws_rpm, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[4] ~= '1' then
  if (key_rpm > 0 and redis.call('EXISTS', KEYS[1]) == 0) or (ws_rpm > 0 and redis.call('EXISTS', KEYS[2]) == 0) then
    return {-1, -1}
  end
else
  if key_rpm > 0 then redis.call('SET', KEYS[1], ARGV[5], 'NX', 'EX', ttl) end
  if ws_rpm > 0 then redis.call('SET', KEYS[2], ARGV[6], 'NX', 'EX', ttl) end
end
local key_n, ws_n = 0, 0
if key_rpm > 0 then key_n = redis.call('INCR', KEYS[1]) end
if ws_rpm > 0 and key_n <= key_rpm then ws_n = redis.call('INCR', KEYS[2]) end
return {key_n, ws_n}
"""

_MIRROR = """
INSERT INTO usage_counters (scope, metric, window_start, value)
SELECT s, m, w, v FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[]) AS t(s, m, w, v)
ON CONFLICT (scope, metric, window_start) DO UPDATE SET value = usage_counters.value + EXCLUDED.value
"""

EXPIRE_S = 180  # a minute's counters outlive it: a late request still finds its minute's


def redis_key(tenant_id: str, scope: str, minute: datetime) -> str:
    return f"loom:rl:{{{tenant_id}}}:{scope}:{int(minute.timestamp())}"


class RateCounters:
    def __init__(self, link: RedisLink, pool: asyncpg.Pool, *, flush_s: float = 0.1):
        self.link, self.pool, self.flush_s = link, pool, flush_s
        self._script = None
        # (scope, metric, window): counted in Redis, not yet in Postgres (token_counters.py's too)
        self._mirror: Counter[tuple[str, str, datetime]] = Counter()
        self._in_postgres: set[str] = set()  # Redis counters whose scope was counted in Postgres meanwhile
        self._flushing = asyncio.Lock()
        link.on_recovered.append(self.drop_stale)

    async def count(self, tenant_id: str, key_id: str, minute: datetime, key_rpm: int, ws_rpm: int
                    ) -> tuple[int | None, int | None]:
        """One request on the key's and the workspace's minute: their counts after it (None:
        not counted). Raises RedisDown."""
        keys = [redis_key(tenant_id, f"key:{key_id}", minute), redis_key(tenant_id, f"tenant:{tenant_id}", minute)]
        args = [key_rpm, ws_rpm, EXPIRE_S, "0", 0, 0]
        got = await self.link.call(lambda r: self._run(r, keys, args))
        if got[0] == -1:  # a counter Redis lacks: start it from Postgres's count of that minute
            seeds = await self.postgres_counts([f"key:{key_id}", f"tenant:{tenant_id}"], "requests", minute)
            args[3:] = ["1", *seeds]
            got = await self.link.call(lambda r: self._run(r, keys, args))
        key_n, ws_n = (n or None for n in got)
        for scope, n in ((f"key:{key_id}", key_n), (f"tenant:{tenant_id}", ws_n)):
            if n is not None:
                self._mirror[(scope, "requests", minute)] += 1
        return key_n, ws_n

    def mirror(self, scope: str, metric: str, window: datetime, n: int) -> None:
        """A change made in Redis, to be added to Postgres with the next batch."""
        self._mirror[(scope, metric, window)] += n

    async def _run(self, client: Client, keys: list[str], args: list) -> list[int]:
        await self.drop_stale(client)
        if self._script is None:
            self._script = client.register_script(_COUNT)
        return await self._script(keys=keys, args=args, client=client)

    async def postgres_counts(self, scopes: list[str], metric: str, window: datetime) -> list[int]:
        """Postgres's counts (the seed of counters Redis lacks), this process's batch included."""
        await self.flush()  # this process's own counts first: the seed must include them
        rows = await self.pool.fetch("SELECT scope, value FROM usage_counters WHERE scope = ANY($1)"
                                     " AND metric = $2 AND window_start = $3", scopes, metric, window)
        found = {r["scope"]: r["value"] for r in rows}
        return [found.get(s, 0) for s in scopes]

    def counted_in_postgres(self, tenant_id: str, key_id: str, minute: datetime) -> None:
        """A fallback admission counted this minute in Postgres: Redis's copy (if it kept one)
        misses it and must be seeded again."""
        self.stale_in_redis([redis_key(tenant_id, f"key:{key_id}", minute),
                             redis_key(tenant_id, f"tenant:{tenant_id}", minute)])

    def stale_in_redis(self, names: list[str]) -> None:
        """Redis counters that miss a change made in Postgres: dropped (so seeded again) as
        soon as Redis answers this process again."""
        self._in_postgres.update(names)

    async def drop_stale(self, client: Client) -> None:
        """Drop the counters marked stale (on recovery, and before each use: a change made in
        Postgres while another task already found Redis again is not missed)."""
        if not self._in_postgres:
            return
        done = list(self._in_postgres)
        for name in done:  # one key at a time: they may lie in several slots
            await client.delete(name)
        self._in_postgres.difference_update(done)

    async def flush(self) -> None:
        """Add the counts made in Redis to Postgres (one statement per batch)."""
        async with self._flushing:
            if not self._mirror:
                return
            batch, self._mirror = self._mirror, Counter()
            try:
                await self.pool.execute(_MIRROR, [s for s, _, _ in batch], [m for _, m, _ in batch],
                                        [w for _, _, w in batch], list(batch.values()))
            except BaseException:
                self._mirror.update(batch)  # kept for the next flush
                raise

    async def run(self) -> None:
        """Flush every `flush_s` until cancelled (then once more)."""
        try:
            while True:
                await asyncio.sleep(self.flush_s)
                try:
                    await self.flush()
                except Exception as exc:
                    log.warning("rate counter mirror failed", error=repr(exc))
        finally:
            with contextlib.suppress(Exception):
                await self.flush()
