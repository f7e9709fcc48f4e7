"""Domain errors -> typed gRPC statuses: a `LoomError` answers its class's own status
(loom_common.grpc_errors; an InvalidArgument's field as a google.rpc.BadRequest detail); the few
foreign exceptions that are the caller's bad input are listed here."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import asyncpg
import grpc
from pydantic import ValidationError

from loom_common.errors import LoomError
from loom_common.grpc_errors import abort, abort_status
from loom_common.logging import get_logger

log = get_logger(__name__)
T = TypeVar("T")

_CODES: list[tuple[type[Exception], grpc.StatusCode]] = [
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
        await abort_status(context, grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {first['msg']}", field=field)
    except LoomError as exc:
        await abort(context, exc)
    except Exception as exc:
        for kind, code in _CODES:
            if isinstance(exc, kind):
                await context.abort(code, str(exc))
        log.exception("unexpected error in rpc")
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
    raise AssertionError("unreachable")
