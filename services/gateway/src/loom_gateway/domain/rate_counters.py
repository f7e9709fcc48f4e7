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
SELECT s, 'requests', w, v FROM unnest($1::text[], $2::timestamptz[], $3::bigint[]) AS t(s, w, v)
ON CONFLICT (scope, metric, window_start) DO UPDATE SET value = usage_counters.value + EXCLUDED.value
"""

EXPIRE_S = 180  # a minute's counters outlive it: a late request still finds its minute's


def redis_key(tenant_id: str, scope: str, minute: datetime) -> str:
    return f"loom:rl:{{{tenant_id}}}:{scope}:{int(minute.timestamp())}"


class RateCounters:
    def __init__(self, link: RedisLink, pool: asyncpg.Pool, *, flush_s: float = 0.1):
        self.link, self.pool, self.flush_s = link, pool, flush_s
        self._script = None
        self._mirror: Counter[tuple[str, datetime]] = Counter()  # counted in Redis, not yet in Postgres
        self._in_postgres: set[tuple[str, str, datetime]] = set()  # (tenant, scope, minute) counted there
        self._flushing = asyncio.Lock()
        link.on_recovered.append(self._drop_counted_in_postgres)

    async def count(self, tenant_id: str, key_id: str, minute: datetime, key_rpm: int, ws_rpm: int
                    ) -> tuple[int | None, int | None]:
        """One request on the key's and the workspace's minute: their counts after it (None:
        not counted). Raises RedisDown."""
        keys = [redis_key(tenant_id, f"key:{key_id}", minute), redis_key(tenant_id, f"tenant:{tenant_id}", minute)]
        args = [key_rpm, ws_rpm, EXPIRE_S, "0", 0, 0]
        got = await self.link.call(lambda r: self._run(r, keys, args))
        if got[0] == -1:  # a counter Redis lacks: start it from Postgres's count of that minute
            seeds = await self._postgres_counts([f"key:{key_id}", f"tenant:{tenant_id}"], minute)
            args[3:] = ["1", *seeds]
            got = await self.link.call(lambda r: self._run(r, keys, args))
        key_n, ws_n = (n or None for n in got)
        for scope, n in ((f"key:{key_id}", key_n), (f"tenant:{tenant_id}", ws_n)):
            if n is not None:
                self._mirror[(scope, minute)] += 1
        return key_n, ws_n

    async def _run(self, client: Client, keys: list[str], args: list) -> list[int]:
        if self._script is None:
            self._script = client.register_script(_COUNT)
        return await self._script(keys=keys, args=args, client=client)

    async def _postgres_counts(self, scopes: list[str], minute: datetime) -> list[int]:
        await self.flush()  # this process's own counts first: the seed must include them
        rows = await self.pool.fetch("SELECT scope, value FROM usage_counters WHERE scope = ANY($1)"
                                     " AND metric = 'requests' AND window_start = $2", scopes, minute)
        found = {r["scope"]: r["value"] for r in rows}
        return [found.get(s, 0) for s in scopes]

    def counted_in_postgres(self, tenant_id: str, key_id: str, minute: datetime) -> None:
        """A fallback admission counted this minute in Postgres: Redis's copy (if it kept one)
        misses it and must be seeded again."""
        self._in_postgres.add((tenant_id, f"key:{key_id}", minute))
        self._in_postgres.add((tenant_id, f"tenant:{tenant_id}", minute))

    async def _drop_counted_in_postgres(self, client: Client) -> None:
        if not self._in_postgres:
            return
        done = list(self._in_postgres)
        for tenant_id, scope, minute in done:  # one key at a time: they may lie in several slots
            await client.delete(redis_key(tenant_id, scope, minute))
        self._in_postgres.difference_update(done)

    async def flush(self) -> None:
        """Add the counts made in Redis to Postgres (one statement per batch)."""
        async with self._flushing:
            if not self._mirror:
                return
            batch, self._mirror = self._mirror, Counter()
            try:
                await self.pool.execute(_MIRROR, [s for s, _ in batch], [m for _, m in batch], list(batch.values()))
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
