"""API key admission data cached in Redis, shared by the gateway's replicas (optional), or
for a moment in this process when there is no Redis (`LocalKeys`).

An entry is what admission needs of a key, by the SHA-256 digest of its secret: the key's own
row, its app's published version and its workspace's limits, as stored (the service defaults
are applied by the reader). Never the secret itself, never anything sealed.

Invalidation is immediate: every write that changes an entry (a key revoked or its limits
changed, an app published or deleted, a workspace's limits changed or the workspace deleted)
replaces the entries of the keys it touches by a short-lived tombstone once it has committed.
A tombstone, unlike a deletion, also stops a request that read Postgres before the commit
from caching what it read after it (`put` only sets a key that is absent), so no stale entry
can come back. An invalidation that finds Redis down is kept and done before this process
uses Redis again (`RedisLink.on_recovered`); meanwhile every replica reads Postgres.

Without Redis, `LocalKeys` keeps a key's admission row in this process for `ttl_s` (2 s by
default, LOOM_GATEWAY_KEY_ADMISSION_CACHE_S; 0: off): a key whose requests count nothing (no
rate limit, no token quota) is then admitted with no Postgres round trip at all; a key with a
limit or a quota is still counted by Postgres on every request, exactly as before. A change made
through this replica drops its entries at once (the same `forget` as above, plus a generation
that stops a read from before the change from being kept); a change made through another
replica is seen here within `ttl_s`. With Redis the local copy is off: Redis's tombstones make a
revoke take effect on every replica at once, which a per-process copy would delay.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable

import asyncpg

from loom_common.logging import get_logger
from loom_common.redis_link import Client, RedisDown, RedisLink, Signed

log = get_logger(__name__)

TOMBSTONE = "-"
# The admission row, without counting anything (limits.py's _ADMIT does the same join).
KEY_ROW = """
SELECT k.id, k.tenant_id, k.kind, k.app_id, a.published_version, k.rpm_unlimited, k.rpm_limit,
       k.tokens_per_day AS key_tokens, t.rpm_limit AS ws_rpm, t.tokens_per_day AS ws_tokens
FROM api_keys k JOIN tenants t ON t.id = k.tenant_id LEFT JOIN apps a ON a.id = k.app_id
WHERE k.key_hash = $1
"""


def _name(digest: str) -> str:
    return f"loom:key:{digest}"


class LocalKeys:
    """Admission rows (limits resolved) of recently used keys, in this process, each for `ttl_s`.
    At most `max_entries` (the least recently stored go first): memory stays bounded whatever
    keys callers present (unknown keys are never stored)."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.ttl_s, self.max_entries, self.clock = ttl_s, max_entries, clock
        self._rows: OrderedDict[str, tuple[float, dict]] = OrderedDict()
        self.generation = 0  # bumped by every forget: a row read before it is not stored after it

    def get(self, digest: str) -> dict | None:
        hit = self._rows.get(digest)
        if hit is None:
            return None
        if self.clock() >= hit[0]:
            del self._rows[digest]
            return None
        return hit[1]

    def put(self, digest: str, row: dict, generation: int) -> None:
        """Keep `row`, read from Postgres when `generation` was current (else it may predate a change)."""
        if generation != self.generation:
            return
        self._rows[digest] = (self.clock() + self.ttl_s, row)
        self._rows.move_to_end(digest)
        while len(self._rows) > self.max_entries:
            self._rows.popitem(last=False)

    def forget(self, digests: list[str]) -> None:
        self.generation += 1
        for digest in digests:
            self._rows.pop(digest, None)


class KeyCache:
    def __init__(self, link: RedisLink | None, secret: bytes = b"", *, ttl_s: int = 60, tombstone_s: int = 30,
                 local_ttl_s: float = 0.0):
        self.link, self.ttl_s, self.tombstone_s = link, ttl_s, tombstone_s
        # This process's copy, only without Redis (see the module's docstring).
        self.local = LocalKeys(local_ttl_s) if link is None and local_ttl_s > 0 else None
        self.signed = Signed(secret, "loom key cache")  # an entry written without the secret is a miss
        self._pending: set[str] = set()  # digests whose invalidation found Redis down
        if link is not None:
            link.on_recovered.append(self._forget_pending)

    async def get(self, digest: str) -> dict | None:
        """The cached row, or None (not cached, invalidated a moment ago): read Postgres.
        Raises RedisDown."""
        assert self.link is not None
        raw = await self.link.call(lambda r: r.get(_name(digest)))
        payload = None if raw is None or raw == TOMBSTONE else self.signed.open(_name(digest), raw)
        return json.loads(payload) if payload else None

    async def put(self, digest: str, row: dict) -> None:
        if self.link is None:
            return
        with contextlib.suppress(RedisDown):  # not cached: the next admission reads Postgres again
            value = self.signed.seal(_name(digest), json.dumps(row))
            await self.link.call(lambda r: r.set(_name(digest), value, nx=True, ex=self.ttl_s))

    async def forget(self, digests: list[str]) -> None:
        """After a committed change of these keys: no replica admits them from the old entry
        (this one at once; without Redis, another one once its local copy lapses)."""
        if self.local is not None:
            self.local.forget(digests)
        if self.link is None or not digests:
            return
        try:
            await self.link.call(lambda r: self._tombstone(r, digests))
        except RedisDown:
            self._pending.update(digests)
            log.warning("key cache invalidation deferred until redis is back", keys=len(digests))

    async def _tombstone(self, client: Client, digests: list[str]) -> None:
        async with client.pipeline(transaction=False) as pipe:
            for digest in digests:
                pipe.set(_name(digest), TOMBSTONE, ex=self.tombstone_s)
            await pipe.execute()

    async def _forget_pending(self, client: Client) -> None:
        if self._pending:
            digests = list(self._pending)
            await self._tombstone(client, digests)
            self._pending.difference_update(digests)

    # ---- the writes that change entries: which keys they touch ---------------------------

    async def digests(self, conn: asyncpg.Connection | asyncpg.Pool, *, key_id: str | None = None,
                      app_id: str | None = None, tenant_id: str | None = None) -> list[str]:
        """The digests of one key, an app's keys or a workspace's keys (read before a delete
        takes the rows away; nothing is read without a cache)."""
        if self.link is None and self.local is None:
            return []
        rows = await conn.fetch("SELECT key_hash FROM api_keys WHERE ($1::text IS NULL OR id = $1)"
                                " AND ($2::text IS NULL OR app_id = $2) AND ($3::text IS NULL OR tenant_id = $3)",
                                key_id, app_id, tenant_id)
        return [r["key_hash"] for r in rows]
