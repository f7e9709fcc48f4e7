"""API key admission data cached in Redis, shared by the gateway's replicas (optional).

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
"""

from __future__ import annotations

import contextlib
import json

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


class KeyCache:
    def __init__(self, link: RedisLink | None, secret: bytes = b"", *, ttl_s: int = 60, tombstone_s: int = 30):
        self.link, self.ttl_s, self.tombstone_s = link, ttl_s, tombstone_s
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
        """After a committed change of these keys: no replica admits them from the old entry."""
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
        takes the rows away; nothing is read without Redis)."""
        if self.link is None:
            return []
        rows = await conn.fetch("SELECT key_hash FROM api_keys WHERE ($1::text IS NULL OR id = $1)"
                                " AND ($2::text IS NULL OR app_id = $2) AND ($3::text IS NULL OR tenant_id = $3)",
                                key_id, app_id, tenant_id)
        return [r["key_hash"] for r in rows]
