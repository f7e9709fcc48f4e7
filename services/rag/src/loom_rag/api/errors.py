"""Domain errors -> typed gRPC statuses, in one place (see domain/errors.py for the tree)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import asyncpg
import grpc
from pydantic import ValidationError

from loom_common.errors import PermanentError, RetryableError
from loom_common.logging import get_logger
from loom_rag.domain.errors import AlreadyExists, EmbeddingMismatch, InvalidArgument, NotFound

log = get_logger(__name__)
T = TypeVar("T")

_CODES: list[tuple[type[Exception], grpc.StatusCode]] = [
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (EmbeddingMismatch, grpc.StatusCode.FAILED_PRECONDITION),
    (RetryableError, grpc.StatusCode.UNAVAILABLE),
    (PermanentError, grpc.StatusCode.FAILED_PRECONDITION),
    # Text Postgres cannot store (a NUL, a lone surrogate) is the caller's bad input, as in the gateway.
    (asyncpg.DataError, grpc.StatusCode.INVALID_ARGUMENT),
    (UnicodeError, grpc.StatusCode.INVALID_ARGUMENT),
]


async def guarded(context: grpc.aio.ServicerContext, call: Awaitable[T]) -> T:
    try:
        return await call
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(["process_rule", *(str(p) for p in first["loc"])])
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {first['msg']}")
    except Exception as exc:
        for kind, code in _CODES:
            if isinstance(exc, kind):
                await context.abort(code, str(exc))
        log.exception("unexpected error in rpc")
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
    raise AssertionError("unreachable")
