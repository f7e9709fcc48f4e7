"""Published app versions in Redis, shared by the gateway's replicas (optional).

A published version never changes (a new publish is a new version, and the key cache moves
keys to it), so an entry needs no invalidation: a replica that has not run a version yet reads
it from Redis instead of Postgres. The DSL is stored as Postgres holds it, secret values sealed
(app_secrets.py): they are opened in the process that runs it, never in Redis.
"""

from __future__ import annotations

import contextlib
import json

from loom_common.redis_link import RedisDown, RedisLink, Signed

TTL_S = 3600


def _name(app_id: str, version: int) -> str:
    return f"loom:app:{app_id}:v{version}"


class PublishedCache:
    def __init__(self, link: RedisLink | None, secret: bytes = b""):
        self.link = link
        self.signed = Signed(secret, "loom published apps")  # a graph written without the secret is a miss

    async def get(self, tenant_id: str, app_id: str, version: int) -> dict | None:
        """The stored row (id, tenant_id, mode, name, version, dsl as sealed JSON text), or None."""
        if self.link is None:
            return None
        try:
            raw = await self.link.call(lambda r: r.get(_name(app_id, version)))
        except RedisDown:
            return None
        payload = self.signed.open(_name(app_id, version), raw)
        row = json.loads(payload) if payload else None
        return row if row and row["tenant_id"] == tenant_id else None

    async def put(self, row) -> None:
        if self.link is None:
            return
        name = _name(row["id"], row["version"])
        entry = self.signed.seal(name, json.dumps({k: row[k] for k in ("id", "tenant_id", "mode", "name", "version",
                                                                        "dsl")}))
        with contextlib.suppress(RedisDown):
            await self.link.call(lambda r: r.set(name, entry, ex=TTL_S))
