"""Admission of new runs: when the run queue is full, refuse at once with 503 and Retry-After.

A run request waits in JetStream's RUNS work queue until an orchestrator worker has a free slot
(`LOOM_ORCHESTRATOR_MAX_CONCURRENT_RUNS` per process). Unbounded, an overload turns into every
client waiting until its own timeout (a timeout storm) while the queue grows behind them. The
gateway checks the queue's depth (the runs consumer's pending messages, shared by every gateway
and orchestrator replica) before it records a run, and past `LOOM_GATEWAY_MAX_QUEUED_RUNS`
answers 503 `overloaded` with `Retry-After`: nothing is recorded or published, the client may
try again.

The depth costs one JetStream API round trip, so it is read at most once per `max_age_s`, and
never on a run's path while the estimate is under the limit: a reading older than that is
taken again in the background while the run is admitted on the estimate. The estimate is the
last reading plus the runs this process admitted since (an overestimate during a burst, never
an underestimate from this replica), so at most `max_queued` runs are admitted on one reading.
An estimate at or past the limit is read again at once (one shared request) before a run is
refused, so the queue draining is seen without waiting out `max_age_s`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from loom_common.logging import get_logger
from loom_gateway.domain.errors import Overloaded

log = get_logger(__name__)


class RunAdmission:
    def __init__(self, queue_depth: Callable[[], Awaitable[int]], *, max_queued: int, retry_after_s: int = 2,
                 max_age_s: float = 1.0) -> None:
        self.queue_depth, self.max_queued = queue_depth, max_queued
        self.retry_after_s, self.max_age_s = retry_after_s, max_age_s
        self._depth = 0          # the last reading
        self._read_at = -1e9     # its monotonic time
        self._since = 0          # runs admitted here since that reading
        self._reading: asyncio.Future[None] | None = None
        self.refused = 0

    async def admit(self) -> None:
        """Return when a run may be requested; raise `Overloaded` when the queue is full."""
        if self.max_queued <= 0:
            return
        if self._estimate() >= self.max_queued:
            await asyncio.shield(self._read())
        elif time.monotonic() - self._read_at > self.max_age_s:
            self._read()  # for the runs after this one, which goes on at once
        if self._estimate() >= self.max_queued:
            self.refused += 1
            raise Overloaded(f"{self._depth} runs are waiting for a worker (max_queued_runs={self.max_queued}); "
                             "try again later.", retry_after_s=self.retry_after_s)
        self._since += 1

    def _estimate(self) -> int:
        return self._depth + self._since

    def _read(self) -> asyncio.Future[None]:
        """The reading in flight, or a new one (one request at a time; others share its answer)."""
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read_once(self._since))
        return self._reading

    async def _read_once(self, admitted: int) -> None:
        """`admitted`: runs counted when it was asked for; those admitted since stay counted (their
        requests may be missing from its answer)."""
        try:
            depth = await self.queue_depth()
        except Exception as exc:  # no reading (NATS restarting): admit; publishing will tell
            log.warning("run queue depth unknown", error=repr(exc))
            depth = 0
        finally:
            self._reading = None
        self._depth, self._since, self._read_at = depth, self._since - admitted, time.monotonic()
