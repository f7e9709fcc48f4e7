"""gRPC adapters implementing the engine's ports (the only modules that touch protobuf here).

Every call carries a deadline and Loom's metadata; gRPC statuses are translated right here
into `RetryableError` (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) or
`PermanentError` (everything else), so nodes never see a grpc exception.
"""

from __future__ import annotations

import grpc

from loom_common.errors import PermanentError, RetryableError

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)


def translate(exc: grpc.aio.AioRpcError, service: str) -> Exception:
    detail = f"{service}: {exc.code().name}: {exc.details()}"
    if exc.code() in RETRYABLE:
        return RetryableError(detail)
    return PermanentError(detail, code=exc.code().name.lower())


class LazyChannel:
    """A channel opened on first use (grpc.aio channels bind to the running loop)."""

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self._channel: grpc.aio.Channel | None = None

    def get(self) -> grpc.aio.Channel:
        if self._channel is None:
            from loom_common.grpc_client import channel

            self._channel = channel(self.addr)
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
