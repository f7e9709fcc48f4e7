"""gRPC status <-> `loom_common.errors`, in one table, both ways.

A server aborts with `abort(context, exc)`: the status is the error class's `grpc_status`, the
details text its message, its short `code` travels as a `google.rpc.ErrorInfo` reason and, for
an `InvalidArgument`, the field as a `google.rpc.BadRequest` detail (both in the
`grpc-status-details-bin` trailer, the standard "richer error model" that grpcio-status also
reads and writes). A client turns the `AioRpcError` back into the error class with
`error_from_rpc(exc, service)`, code and field included.

grpcio-status is not a dependency: its wheels pin protobuf below the version Loom runs
(protobuf 7); the wire format is the google.rpc.Status message from googleapis-common-protos.
"""

from __future__ import annotations

from typing import NoReturn

import grpc
from google.rpc import error_details_pb2, status_pb2

from loom_common.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    LoomError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

DETAILS_KEY = "grpc-status-details-bin"

# Reading: the class a status becomes. Writing uses each class's own `grpc_status`, which this
# table agrees with (tests/test_common_grpc_errors.py checks the round trip for every row).
ERRORS: dict[grpc.StatusCode, type[LoomError]] = {
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.CANCELLED: Aborted,  # the server cancelled it (shutting down): worth another try
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNIMPLEMENTED: Internal,
    grpc.StatusCode.DATA_LOSS: Internal,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.UNKNOWN: Internal,  # an exception the server did not map: a bug there
}


def status_of(exc: LoomError) -> grpc.StatusCode:
    return grpc.StatusCode[exc.grpc_status]


DOMAIN = "loom"  # ErrorInfo.domain of the reasons Loom's services send


def trailers(code: grpc.StatusCode, message: str, *, field: str | None = None,
             reason: str | None = None) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying `reason` (an ErrorInfo) and `field` (a BadRequest)."""
    if not field and not reason:
        return ()
    status = status_pb2.Status(code=code.value[0], message=message)
    if reason:
        status.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN))
    if field:
        status.details.add().Pack(error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(field=field, description=message)]))
    return ((DETAILS_KEY, status.SerializeToString()),)


async def abort_status(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str, *,
                       field: str | None = None, reason: str | None = None) -> NoReturn:
    """Abort the RPC with `code`, its `reason` as an ErrorInfo and `field` as a BadRequest detail."""
    await context.abort(code, message, trailing_metadata=trailers(code, message, field=field, reason=reason))
    raise AssertionError("unreachable")  # context.abort raises


async def abort(context: grpc.aio.ServicerContext, exc: LoomError) -> NoReturn:
    """Abort the RPC with the status `exc`'s class declares, its code and field as details."""
    await abort_status(context, status_of(exc), exc.message, field=exc.field, reason=exc.code)


def _details(exc: grpc.aio.AioRpcError) -> tuple[str | None, str | None]:
    """(reason, field) from the google.rpc.Status trailer, when the server sent one."""
    reason = field = None
    for key, value in exc.trailing_metadata() or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            for detail in status_pb2.Status.FromString(value).details:
                info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
                if detail.Unpack(info) and info.domain == DOMAIN:
                    reason = info.reason
                elif detail.Unpack(bad) and bad.field_violations:
                    field = bad.field_violations[0].field
    return reason, field


def _field_in_text(text: str) -> str | None:
    """From a server not sending details yet: a leading "<field>: " of the details text."""
    head = text.split(":", 1)[0].strip() if ":" in text else ""
    return head if head and " " not in head else None


def error_from_rpc(exc: grpc.aio.AioRpcError, service: str) -> LoomError:
    """The Loom error a failed call to `service` stands for: `.detail` keeps the server's text,
    `.code` the reason it sent (else the class's code), `.field` the field it named."""
    status, detail = exc.code(), exc.details() or ""
    kind = ERRORS.get(status, Internal)
    reason, field = _details(exc)
    message = f"{service}: {status.name}: {detail}"
    if kind is InvalidArgument:
        err: LoomError = InvalidArgument(message, field=field or _field_in_text(detail), code=reason)
    else:
        err = kind(message, code=reason)
        err.field = field  # a field named with another status (a tool's SSRF refusal names its url)
    err.detail, err.service = detail, service
    return err
