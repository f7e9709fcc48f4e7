"""How many sandboxes run at once in one tools process, and what the others do meanwhile.

Each sandbox is a process tree with its own CPU, memory and tmpfs budget: without a cap, a
burst of runs (24 at once, across tenants) multiplies those budgets past what the machine
has. A run takes a slot or waits in FIFO order (asyncio's semaphore queues waiters fairly);
one that has waited `queue_wait_s` is refused with `sandbox_busy`, a retryable answer, rather
than waiting unboundedly behind the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from loom_tools.errors import SandboxBusy


class Admission:
    def __init__(self, max_concurrent: int, queue_wait_s: float) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.max_concurrent = max_concurrent
        self.queue_wait_s = queue_wait_s
        self.running = 0   # sandboxes holding a slot now
        self.waiting = 0   # runs queued for one
        self._gate: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        # One per event loop (tests run several loops one after another; the service one).
        loop = asyncio.get_running_loop()
        if self._gate is None or self._loop is not loop:
            self._gate, self._loop = asyncio.Semaphore(self.max_concurrent), loop
        return self._gate

    @contextlib.asynccontextmanager
    async def slot(self, deadline_s: float) -> AsyncIterator[float]:
        """Hold a slot; yields the seconds left of `deadline_s` once it is taken (the wait
        counts against the caller's deadline, so a queued run never outlives it)."""
        gate = self._semaphore()
        loop = asyncio.get_running_loop()
        start, wait_s = loop.time(), min(self.queue_wait_s, deadline_s)
        if not gate.locked():
            await gate.acquire()  # a free slot: taken at once, without a task (wait_for makes one)
        else:
            self.waiting += 1
            try:
                await asyncio.wait_for(gate.acquire(), wait_s)
            except TimeoutError:
                raise SandboxBusy(f"all {self.max_concurrent} sandboxes stayed busy for {wait_s:g}s; "
                                  "try again later") from None
            finally:
                self.waiting -= 1
        self.running += 1
        try:
            yield max(0.0, deadline_s - (loop.time() - start))
        finally:
            self.running -= 1
            gate.release()
