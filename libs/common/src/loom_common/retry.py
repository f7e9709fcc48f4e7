"""RetryPolicy: how a side effect is retried, with every default written down.

Built on tenacity; only `RetryableError` (and plain timeouts) are retried, a
`PermanentError` stops at once.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)
from tenacity.stop import stop_base

from loom_common.errors import RetryableError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    initial_interval_s: float = 0.2  # first back-off
    backoff_coefficient: float = 2.0  # each wait is the last times this
    maximum_interval_s: float = 10.0  # no single wait is longer
    maximum_attempts: int | None = 5  # attempts in all, the first included; 1 = no retry; None: until
    # the deadline given to `call` (a policy without one must be called with a deadline)

    def delay_for(self, attempt: int) -> float:
        """Back-off before attempt number `attempt + 1` (attempt counts from 1)."""
        delay = self.initial_interval_s * self.backoff_coefficient ** max(0, attempt - 1)
        return min(delay, self.maximum_interval_s)

    async def call(self, fn: Callable[[], Awaitable[T]], *, deadline: float | None = None) -> T:
        """`fn()` until it returns, raises a non-retryable error, or the attempts or the
        `deadline` (a `time.monotonic()` instant: no wait ends past it) run out; the last error
        is raised then."""
        if self.maximum_attempts is None and deadline is None:
            raise ValueError("a RetryPolicy without maximum_attempts needs a deadline")
        stops: list[stop_base] = []
        if self.maximum_attempts is not None:
            stops.append(stop_after_attempt(self.maximum_attempts))
        if deadline is not None:
            stops.append(stop_before_delay(deadline - time.monotonic()))  # no wait ends past it
        stop = functools.reduce(operator.or_, stops)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((RetryableError, asyncio.TimeoutError)),
            stop=stop,
            wait=wait_exponential(
                multiplier=self.initial_interval_s,
                exp_base=self.backoff_coefficient,
                max=self.maximum_interval_s,
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await fn()
        raise AssertionError("unreachable")  # tenacity either returns or re-raises


NO_RETRY = RetryPolicy(maximum_attempts=1)
