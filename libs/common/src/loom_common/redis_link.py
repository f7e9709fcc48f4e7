"""Optional Redis, for hot data shared by a service's replicas (`LOOM_REDIS_URL`, or the seed's
REDIS_HOST/PORT/PASSWORD: settings.redis_url).

`RedisLink` is the one door: it connects lazily, asks the server whether it is a cluster node
(`INFO cluster`) and then talks through redis-py's `RedisCluster` (keys spread over the
cluster's slots, MOVED answers followed) or a plain client. Nothing Loom keeps in Redis is
its only copy, so a caller never waits on a Redis that is down:

    call(fn)   runs `fn(client)`; any connection error, timeout or cluster error marks Redis
               down for `retry_s` and raises `RedisDown`, and while it is down every call
               raises `RedisDown` at once (no connect attempt): the caller falls back to
               Postgres. The first call that succeeds again runs the `on_recovered` hooks
               first (e.g. counters that were kept in Postgres meanwhile are re-seeded).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from loom_common.logging import get_logger

log = get_logger(__name__)


class RedisDown(Exception):
    """Redis cannot answer now: use the fallback."""


Client = Redis | RedisCluster


class RedisLink:
    def __init__(self, url: str, *, timeout_s: float = 0.5, retry_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.url, self.timeout_s, self.retry_s, self._clock = url, timeout_s, retry_s, clock
        self._client: Client | None = None
        self._down_until = 0.0
        self._was_down = False
        self._lock = asyncio.Lock()
        self.on_recovered: list[Callable[[Client], Awaitable[None]]] = []

    @property
    def cluster(self) -> bool:
        return isinstance(self._client, RedisCluster)

    async def _connect(self) -> Client:
        # No retries inside redis-py: a down server must cost one short timeout, then the fallback.
        kw: dict[str, Any] = {"socket_timeout": self.timeout_s, "socket_connect_timeout": self.timeout_s,
                              "decode_responses": True}
        plain = Redis.from_url(self.url, retry=Retry(NoBackoff(), 0), **kw)
        info = await plain.info("cluster")
        if not info.get("cluster_enabled"):
            return plain
        await plain.aclose()
        cluster = RedisCluster.from_url(self.url, retry=Retry(NoBackoff(), 0), **kw)
        await cluster.initialize()
        return cluster

    async def call(self, fn: Callable[[Client], Awaitable[Any]]) -> Any:
        if self._clock() < self._down_until:
            raise RedisDown("redis marked down")
        try:
            if self._client is None:
                async with self._lock:
                    if self._client is None:
                        self._client = await self._connect()
            client = self._client
            if self._was_down:
                for hook in self.on_recovered:
                    await hook(client)
                self._was_down = False
                log.info("redis reachable again")
            return await fn(client)
        except (TimeoutError, RedisError, OSError) as exc:
            if not self._was_down:
                log.warning("redis unavailable: falling back to postgres", error=repr(exc))
            self._was_down = True
            self._down_until = self._clock() + self.retry_s
            raise RedisDown(repr(exc)) from exc

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class Signed:
    """Values that decide access (a cached key admission, an app's DSL) are stored with an
    HMAC: whoever can write to Redis but does not hold the service's secret cannot mint an API
    key or swap an app's graph; a value that fails the check is treated as absent."""

    def __init__(self, secret: bytes, purpose: str):
        self._key = hmac.new(secret, purpose.encode(), hashlib.sha256).digest()

    def _mac(self, name: str, payload: str) -> str:
        return hmac.new(self._key, f"{name}\n{payload}".encode(), hashlib.sha256).hexdigest()

    def seal(self, name: str, payload: str) -> str:
        """`payload` for the Redis key `name` (bound to it: not replayable under another key)."""
        return f"{self._mac(name, payload)}.{payload}"

    def open(self, name: str, value: str | None) -> str | None:
        if not value or "." not in value:
            return None
        mac, payload = value.split(".", 1)
        if not hmac.compare_digest(mac, self._mac(name, payload)):
            log.warning("redis value with a bad signature ignored", key=name)
            return None
        return payload


def open_link(url: str | None, **kw) -> RedisLink | None:
    """A link when Redis is configured, else None (every caller then uses Postgres alone)."""
    return RedisLink(url, **kw) if url else None
