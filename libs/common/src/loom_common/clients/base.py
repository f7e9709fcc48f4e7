"""`ServiceClient`: channel, deadline, metadata, retries and error translation for one service.

Retries: a call failing with a `RetryableError` (UNAVAILABLE, DEADLINE_EXCEEDED,
RESOURCE_EXHAUSTED, ABORTED) is tried again on the `RetryPolicy`'s back-off, within the call's
one deadline (the deadline is not renewed per attempt); a `PermanentError` is raised at once.
A stream is retried only before its first message, since nothing has reached the caller then.
Callers with a retry layer of their own (the orchestrator's node retries) pass `NO_RETRY`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from loom_common.errors import DeadlineExceeded, RetryableError
from loom_common.grpc_client import call_metadata, channel
from loom_common.grpc_errors import error_from_rpc
from loom_common.retry import NO_RETRY, RetryPolicy

T = TypeVar("T")

# A service restarting answers UNAVAILABLE for about a second: three tries over ~0.3 s.
DEFAULT_RETRY = RetryPolicy(initial_interval_s=0.1, backoff_coefficient=2.0, maximum_interval_s=1.0,
                            maximum_attempts=3)

__all__ = ["DEFAULT_RETRY", "NO_RETRY", "ServiceClient"]


class ServiceClient:
    service = "service"  # the name errors carry ("inference: UNAVAILABLE: ...")

    def __init__(self, addr: str, *, timeout_s: float, retry: RetryPolicy = DEFAULT_RETRY) -> None:
        self.addr, self.timeout_s, self.retry = addr, timeout_s, retry
        self._channel: grpc.aio.Channel | None = None

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:  # grpc.aio channels bind to the running loop: opened on first use
            self._channel = channel(self.addr)
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            channel_, self._channel = self._channel, None
            await channel_.close()

    async def _retrying(self, attempt: Callable[[float], Awaitable[T]], timeout_s: float | None,
                        retry: RetryPolicy | None) -> T:
        policy = retry or self.retry
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout_s or self.timeout_s)
        for n in itertools.count(1):
            left = deadline - loop.time()
            if left <= 0:
                raise DeadlineExceeded(f"{self.service}: DEADLINE_EXCEEDED: no time left to try again")
            try:
                return await attempt(left)
            except RetryableError:
                wait = policy.delay_for(n)
                if n >= policy.maximum_attempts or loop.time() + wait >= deadline:
                    raise
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def unary(self, method: Callable[..., Any], request: Any, *, tenant_id: str | None = None,
                    run_id: str | None = None, timeout_s: float | None = None,
                    retry: RetryPolicy | None = None) -> Any:
        """`method` is a stub's bound method (stub.Embed); its answer, or a `LoomError`."""
        metadata = call_metadata(tenant_id=tenant_id, run_id=run_id)

        async def attempt(left: float) -> Any:
            try:
                return await method(request, timeout=left, metadata=metadata)
            except grpc.aio.AioRpcError as exc:
                raise error_from_rpc(exc, self.service) from exc

        return await self._retrying(attempt, timeout_s, retry)

    async def stream(self, method: Callable[..., Any], request: Any, *, tenant_id: str | None = None,
                     run_id: str | None = None, timeout_s: float | None = None,
                     retry: RetryPolicy | None = None) -> AsyncIterator[Any]:
        """The messages of a server stream. Closing the iterator (or cancelling its consumer)
        cancels the RPC, which is how a caller stops work upstream (an engine's generation)."""
        metadata = call_metadata(tenant_id=tenant_id, run_id=run_id)
        calls: list[Any] = []

        async def first(left: float) -> tuple[Any, Any]:
            call = method(request, timeout=left, metadata=metadata)
            calls.append(call)
            try:
                return call, await call.read()
            except grpc.aio.AioRpcError as exc:
                call.cancel()
                raise error_from_rpc(exc, self.service) from exc

        try:
            call, message = await self._retrying(first, timeout_s, retry)
            while message is not grpc.aio.EOF:
                yield message
                try:
                    message = await call.read()
                except grpc.aio.AioRpcError as exc:
                    raise error_from_rpc(exc, self.service) from exc
        finally:
            for call in calls:
                call.cancel()  # no-op when finished; aborts the work upstream when the caller left
