"""Tokens-per-day counters in Redis (optional): limits.py's token quotas, exact across the
gateway's replicas and never open when Redis fails. The rules are limits._RESERVE's, unchanged:
a request is admitted while the day's count (tokens used plus reserved) of the key and of its
workspace is below each one's quota, and its reservation is added to both or to neither.

Postgres stays the record (`usage_counters`, metric 'tokens'; a run's reservation in
`token_reservations`, claimed once by whoever records the run's end); Redis takes the counting:

    reserve   one Lua script checks both counts and adds the reservation to both, or refuses
              (both counters share the workspace's hash tag: one cluster slot).
    change    every other change of a day's count (a settle: the unused part back; tokens
              charged without a reservation) goes through Redis too, so that a counter Redis
              holds is the whole count, whichever replica made the change.
    seed, mirror, fallback   as rate_counters.py's (it keeps the batch): a counter Redis lacks
              starts from Postgres's count of that day; every change made in Redis is added to
              Postgres in batches; Redis down: the change is made in Postgres (limits.py's
              statements) and the counters it touched are dropped from Redis when it answers
              again, so they are seeded from Postgres, which then holds both parts.
"""

from __future__ import annotations

from datetime import datetime

from loom_common.redis_link import Client, RedisLink
from loom_gateway.store.rate_counters import RateCounters

# KEYS: the key's counter, the workspace's. ARGV: key quota, workspace quota (0: no quota, not
# counted), tokens, expiry (s), seeded ("1": ARGV 6 and 7 are Postgres's counts for absent
# counters). Returns 0 (reserved), 2 or 1 (the workspace's, the key's quota is used up: nothing
# reserved), or -1: seed first.
_RESERVE = """
local quota, n, ttl = {tonumber(ARGV[1]), tonumber(ARGV[2])}, tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 1, 2 do
  if quota[i] > 0 then
    if ARGV[5] == '1' then redis.call('SET', KEYS[i], ARGV[5 + i], 'NX', 'EX', ttl)
    elseif redis.call('EXISTS', KEYS[i]) == 0 then return -1 end
  end
end
for _, i in ipairs({2, 1}) do
  if quota[i] > 0 and tonumber(redis.call('GET', KEYS[i])) >= quota[i] then return i end
end
for i = 1, 2 do
  if quota[i] > 0 then redis.call('INCRBY', KEYS[i], n) end
end
return 0
"""

# KEYS: the key's counter, the workspace's. ARGV: the change of each (0: untouched), expiry,
# seeded (as above). Returns 0, or -1: seed first.
_CHANGE = """
local delta, ttl = {tonumber(ARGV[1]), tonumber(ARGV[2])}, tonumber(ARGV[3])
for i = 1, 2 do
  if delta[i] ~= 0 then
    if ARGV[4] == '1' then redis.call('SET', KEYS[i], ARGV[4 + i], 'NX', 'EX', ttl)
    elseif redis.call('EXISTS', KEYS[i]) == 0 then return -1 end
  end
end
for i = 1, 2 do
  if delta[i] ~= 0 then redis.call('INCRBY', KEYS[i], delta[i]) end
end
return 0
"""

EXPIRE_S = 3 * 86400  # as long as Postgres keeps a day (limits.sweep): a late settle finds its day's


def redis_key(tenant_id: str, scope: str, day: datetime) -> str:
    return f"loom:tok:{{{tenant_id}}}:{scope}:{int(day.timestamp())}"


class TokenCounters:
    def __init__(self, link: RedisLink, counters: RateCounters):
        self.link, self.counters = link, counters  # the counters' batch carries these changes to Postgres
        self._reserve_script = self._change_script = None

    def names(self, tenant_id: str, key_id: str | None, day: datetime) -> list[str]:
        return [redis_key(tenant_id, f"key:{key_id}", day), redis_key(tenant_id, f"tenant:{tenant_id}", day)]

    async def _seeds(self, tenant_id: str, key_id: str | None, day: datetime) -> list[int]:
        return await self.counters.postgres_counts([f"key:{key_id}", f"tenant:{tenant_id}"], "tokens", day)

    async def reserve(self, tenant_id: str, key_id: str, day: datetime, key_quota: int, ws_quota: int,
                      tokens: int) -> int:
        """`tokens` held on both counters that have a quota: 0, or which quota is used up (2: the
        workspace's, 1: the key's; nothing held). Raises RedisDown."""
        keys = self.names(tenant_id, key_id, day)
        args = [key_quota, ws_quota, tokens, EXPIRE_S, "0", 0, 0]
        got = await self.link.call(lambda r: self._run("_reserve_script", _RESERVE, r, keys, args))
        if got == -1:
            args[4:] = ["1", *await self._seeds(tenant_id, key_id, day)]
            got = await self.link.call(lambda r: self._run("_reserve_script", _RESERVE, r, keys, args))
        if got == 0:
            for scope, quota in ((f"key:{key_id}", key_quota), (f"tenant:{tenant_id}", ws_quota)):
                if quota > 0:
                    self.counters.mirror(scope, "tokens", day, tokens)
        return got

    async def change(self, tenant_id: str, key_id: str | None, day: datetime, key_delta: int, ws_delta: int) -> None:
        """Add to the key's and the workspace's count of `day` (negative: tokens given back).
        Raises RedisDown (nothing changed)."""
        keys = self.names(tenant_id, key_id, day)
        args = [key_delta if key_id else 0, ws_delta, EXPIRE_S, "0", 0, 0]
        if await self.link.call(lambda r: self._run("_change_script", _CHANGE, r, keys, args)) == -1:
            args[3:] = ["1", *await self._seeds(tenant_id, key_id, day)]
            await self.link.call(lambda r: self._run("_change_script", _CHANGE, r, keys, args))
        for scope, delta in ((f"key:{key_id}", args[0]), (f"tenant:{tenant_id}", ws_delta)):
            if delta:
                self.counters.mirror(scope, "tokens", day, delta)

    async def used(self, tenant_id: str, key_id: str, day: datetime) -> list[int | None]:
        """Redis's counts of the key and the workspace (None: not held there). Raises RedisDown."""
        async def read(client: Client) -> list:
            await self.counters.drop_stale(client)
            return await client.mget(self.names(tenant_id, key_id, day))

        got = await self.link.call(read)
        return [int(v) if v is not None else None for v in got]

    def changed_in_postgres(self, tenant_id: str, key_id: str | None, day: datetime) -> None:
        """Called before and after a change made in Postgres instead (Redis down): Redis's
        counters of that day are dropped before their next use, and so seeded again."""
        self.counters.stale_in_redis(self.names(tenant_id, key_id, day))

    async def _run(self, attr: str, source: str, client: Client, keys: list[str], args: list) -> int:
        await self.counters.drop_stale(client)
        if getattr(self, attr) is None:
            setattr(self, attr, client.register_script(source))
        return int(await getattr(self, attr)(keys=keys, args=args, client=client))
