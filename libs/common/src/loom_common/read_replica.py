"""Reads: a streaming replica's pool when it holds what the reader must see, else the primary.

A service given `LOOM_DATABASE_READ_URL` (a hot standby of its database) sends its read-heavy
queries (lists, history, logs, run detail, retrieval) through `Reads.pool(scope)`; writes, and
reads that decide a write, keep using the primary pool. Without a read URL every read goes to
the primary and nothing below runs.

The rule that keeps replica lag invisible (read-your-own-writes):

    probe    every `probe_s`, sample the primary's WAL position (pg_current_wal_lsn) and the
             replica's replayed position; `synced_at` = the time of the newest primary sample
             the replica has replayed: everything committed before that moment is on it.
    scope    a write marks its scope (a workspace, a tenant) written now (`writing()` while it
             runs, `wrote()` after it committed); a read of that scope goes to the replica only
             once `synced_at` is past the mark, else to the primary.
    lag      a replica that has not caught up with a sample for `max_lag_s` (lagging, paused,
             unreachable) gets no reads at all until it does.
    failure  a replica that refuses a connection sends that read, and the next ones until a probe
             succeeds, to the primary.

Marks are this process's: a write made through another replica of the service is seen once the
lag bound lets the reader's replica serve at all, so a caller that must see a row it did not
write here checks it (the gateway's run detail reads a run missing or still running on the
replica again from the primary).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg

from loom_common.logging import get_logger

log = get_logger(__name__)

# What "cannot reach the replica" looks like: the read is sent to the primary instead.
UNREACHABLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
               asyncpg.CannotConnectNowError)

# Byte positions in the WAL. On a server that is not a standby (a read URL naming the primary
# itself, or a promoted replica) the replayed position is its current one: always in sync.
_PRIMARY_LSN = "SELECT (pg_current_wal_lsn() - '0/0')::bigint"
_REPLAYED_LSN = ("SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
                 " ELSE pg_current_wal_lsn() END - '0/0')::bigint")


class Reads:
    def __init__(self, primary: asyncpg.Pool, replica: asyncpg.Pool | None = None, *, max_lag_s: float = 5.0,
                 probe_s: float = 0.2, clock: Callable[[], float] = time.monotonic):
        self.primary, self.replica = primary, replica
        self.max_lag_s, self.probe_s, self._clock = max_lag_s, probe_s, clock
        self.synced_at = -math.inf   # see the module's docstring
        self._samples: deque[tuple[float, int]] = deque(maxlen=256)  # (time, primary LSN) not yet replayed
        self._written: dict[str, float] = {}   # scope -> when its last write ended
        self._writing: Counter[str] = Counter()  # scope -> writes in progress
        self._fallback = _ReplicaOrPrimary(self) if replica is not None else None

    # ---- routing -------------------------------------------------------------------------

    def pool(self, scope: str | None = None) -> asyncpg.Pool:
        """Where a read of `scope` goes now (the primary pool, or the replica's with a fallback)."""
        if self._fallback is None or not self.replica_usable(scope):
            return self.primary
        return self._fallback  # type: ignore[return-value]  # the pool methods reads use

    def replica_usable(self, scope: str | None = None) -> bool:
        if self.replica is None or self._clock() - self.synced_at > self.max_lag_s:
            return False
        if scope is None:
            return True
        return not self._writing[scope] and self._written.get(scope, -math.inf) < self.synced_at

    @contextlib.contextmanager
    def writing(self, scope: str) -> Iterator[None]:
        """Around a write of `scope`: its reads go to the primary meanwhile and until the
        replica has replayed past its end."""
        if self.replica is None:
            yield
            return
        self._writing[scope] += 1
        try:
            yield
        finally:
            self._writing[scope] -= 1
            if not self._writing[scope]:
                del self._writing[scope]
            self._written[scope] = self._clock()

    def wrote(self, scope: str) -> None:
        if self.replica is not None:
            self._written[scope] = self._clock()

    def replica_failed(self) -> None:
        """The replica refused a read: none goes there until a probe reaches it again."""
        self.synced_at = -math.inf

    # ---- the lag probe --------------------------------------------------------------------

    async def probe(self) -> None:
        """One sample of the primary's WAL position, and how far the replica has replayed."""
        assert self.replica is not None
        sampled = self._clock()
        self._samples.append((sampled, await self.primary.fetchval(_PRIMARY_LSN)))
        replayed = await self.replica.fetchval(_REPLAYED_LSN)
        while self._samples and self._samples[0][1] <= replayed:
            self.synced_at = self._samples.popleft()[0]
        # Marks older than what the replica has are no longer a reason to avoid it.
        for scope in [s for s, at in self._written.items() if at < self.synced_at]:
            del self._written[scope]

    async def run(self) -> None:
        """Probe until cancelled (a service runs it beside its work when it has a replica)."""
        if self.replica is None:
            return
        down = False
        while True:
            try:
                await asyncio.wait_for(self.probe(), timeout=max(1.0, self.max_lag_s))
                if down:
                    log.info("read replica reachable again")
                down = False
            except UNREACHABLE as exc:
                if not down:
                    log.warning("read replica unreachable: reads go to the primary", error=repr(exc))
                down = True
                self.replica_failed()
            except Exception as exc:  # a failed primary sample: try again next time
                log.warning("read replica probe failed", error=repr(exc))
            await asyncio.sleep(self.probe_s)


class _ReplicaOrPrimary:
    """The replica's pool for the read calls services make; a read the replica cannot take
    (unreachable) runs on the primary instead."""

    def __init__(self, reads: Reads):
        self._reads = reads

    async def _call(self, method: str, *args, **kw):
        try:
            return await getattr(self._reads.replica, method)(*args, **kw)
        except UNREACHABLE:
            self._reads.replica_failed()
        except asyncpg.SerializationError:  # cancelled by a conflict with the standby's replay
            pass
        return await getattr(self._reads.primary, method)(*args, **kw)

    async def fetch(self, *args, **kw):
        return await self._call("fetch", *args, **kw)

    async def fetchrow(self, *args, **kw):
        return await self._call("fetchrow", *args, **kw)

    async def fetchval(self, *args, **kw):
        return await self._call("fetchval", *args, **kw)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        replica = self._reads.replica
        try:
            conn = await replica.acquire()
        except UNREACHABLE:
            self._reads.replica_failed()
            async with self._reads.primary.acquire() as conn:
                yield conn
            return
        try:
            yield conn
        finally:
            await replica.release(conn)
