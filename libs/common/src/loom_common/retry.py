"""RetryPolicy: how a side effect is retried, with every default written down.

Built on tenacity; only `RetryableError` (and plain timeouts) are retried, a
`PermanentError` stops at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from loom_common.errors import RetryableError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    initial_interval_s: float = 0.2  # first back-off
    backoff_coefficient: float = 2.0  # each wait is the last times this
    maximum_interval_s: float = 10.0  # no single wait is longer
    maximum_attempts: int = 5  # attempts in all, the first included; 1 = no retry

    def delay_for(self, attempt: int) -> float:
        """Back-off before attempt number `attempt + 1` (attempt counts from 1)."""
        delay = self.initial_interval_s * self.backoff_coefficient ** max(0, attempt - 1)
        return min(delay, self.maximum_interval_s)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((RetryableError, asyncio.TimeoutError)),
            stop=stop_after_attempt(self.maximum_attempts),
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
