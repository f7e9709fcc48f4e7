"""Failed console logins, throttled per account and per client address.

Each attempt is counted before the password is checked (an atomic add-and-read on the shared
`usage_counters`, so replicas and concurrent attempts agree); a success takes its attempt back
and clears the account's count. Past `max_per_account` failures for one e-mail, or
`max_per_ip` from one address, within the current fixed window of `window_s` seconds, a login
answers 429 with `Retry-After` (the window's end) without checking the password. Defaults: 5
per account and 20 per address in 15 minutes (`LOOM_GATEWAY_LOGIN_*`). The e-mail is counted by
its digest, known or not, so the answer does not tell which addresses have accounts.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from loom_gateway.domain import security
from loom_gateway.domain.errors import RateLimited

_BUMP = ("INSERT INTO usage_counters AS u (scope, metric, window_start, value) VALUES ($1, 'login_failures', $2, $3)"
         " ON CONFLICT (scope, metric, window_start) DO UPDATE SET value = u.value + $3 RETURNING value")


@dataclass(frozen=True)
class LoginPolicy:
    max_per_account: int = 5
    max_per_ip: int = 20
    window_s: int = 900


class LoginThrottle:
    def __init__(self, pool: asyncpg.Pool, policy: LoginPolicy = LoginPolicy()):
        self.pool = pool
        self.policy = policy

    @contextlib.asynccontextmanager
    async def attempt(self, email: str, ip: str | None) -> AsyncIterator[None]:
        """Count one login attempt around the block; a block that returns was a success."""
        now = datetime.now(UTC).timestamp()
        start = now - now % self.policy.window_s
        window = datetime.fromtimestamp(start, UTC)
        scopes = [(f"login:account:{security.digest(email.strip().lower())}", self.policy.max_per_account)]
        if ip:
            scopes.append((f"login:ip:{ip}", self.policy.max_per_ip))
        async with self.pool.acquire() as conn:
            counts = [await conn.fetchval(_BUMP, scope, window, 1) for scope, _ in scopes]
        if any(n > limit for n, (_, limit) in zip(counts, scopes, strict=True)):
            raise RateLimited("Too many failed logins; try again later.", code="too_many_login_attempts",
                              retry_after_s=max(1, int(start + self.policy.window_s - now)))
        yield  # an exception (wrong password) leaves the attempt counted as a failure
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM usage_counters WHERE scope = $1 AND metric = 'login_failures'",
                               scopes[0][0])
            if ip:
                await conn.fetchval(_BUMP, scopes[1][0], window, -1)
