"""A worker's hold on one run: the runs.requested message it keeps unacked.

JetStream redelivers the message to another worker `ack_wait_s` after the server last heard
of it (taken, or marked in progress). The heartbeat marks it every `ack_wait_s / 4`, so a
worker that stalls (CPU starvation, a GC pause, a blocked event loop, SIGSTOP) for up to
three quarters of the ack wait keeps its run; a dead one loses it within `ack_wait_s`.

The heartbeat is a task on the worker's event loop, not a thread: a mark certifies that the
loop driving the run is alive. A thread would keep marking a run whose loop is wedged for
good, and that run would never move to a live worker.

A stall longer than that may have let another worker take the run. The lease then counts as
lost from the worker's own clock (the last mark's send time, which is no later than when the
server received it, so the local deadline comes first): every write of the run (its events,
its journal, its outcome) asks `check()` first, so once the deadline has passed nothing more
of the run leaves this worker, whoever owns it now. The run's task is cancelled and the
message left unsettled (`LeaseLost` is `Superseded`): the worker that took it settles it,
or, if none did yet, JetStream redelivers it at once since its ack wait has run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from loom_common.errors import Superseded
from loom_common.logging import get_logger

log = get_logger(__name__)

BEATS_PER_ACK_WAIT = 4
# Subtracted from the deadline: a write checked just before it arrives at the server after it.
SAFETY_MARGIN_S = 0.25


class LeaseLost(Superseded):
    """The run's message went unmarked for longer than its ack wait: another worker may own it."""

    code = "lease_lost"


class Lease:
    def __init__(self, run_id: str, ack_wait_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.run_id, self.ack_wait_s, self._clock = run_id, ack_wait_s, clock
        self._marked = clock()  # the message was just delivered
        self.lost = False
        self._on_lost: Callable[[], None] | None = None

    @property
    def interval_s(self) -> float:
        return self.ack_wait_s / BEATS_PER_ACK_WAIT

    def on_lost(self, callback: Callable[[], None]) -> None:
        """What to do once the lease is lost (cancel the run's task)."""
        self._on_lost = callback

    def held(self) -> bool:
        if not self.lost and self._clock() - self._marked >= self.ack_wait_s - SAFETY_MARGIN_S:
            self.lost = True
            log.warning("run lease lost: no in-progress mark within the ack wait; the run is left to "
                        "whichever worker JetStream gives it to", run_id=self.run_id, ack_wait_s=self.ack_wait_s,
                        silent_s=round(self._clock() - self._marked, 2))
            if self._on_lost is not None:
                self._on_lost()
        return not self.lost

    def check(self) -> None:
        """Raise LeaseLost unless this worker still holds the run (called before each write)."""
        if not self.held():
            raise LeaseLost(f"run {self.run_id}: lease lost (no in-progress mark within {self.ack_wait_s:g} s)")

    async def keep(self, mark: Callable[[], Awaitable[None]]) -> None:
        """The heartbeat: mark the message in progress every `interval_s` while the lease holds."""
        while True:
            await asyncio.sleep(self.interval_s)
            if not self.held():
                return
            sent = self._clock()
            with contextlib.suppress(Exception):  # NATS away: the lease runs out unless it comes back
                await mark()
                self._marked = sent
