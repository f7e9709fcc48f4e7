"""A failed call to a Loom service -> the gateway's API error, for every client.

The shared clients (loom_common.clients) read the gRPC status into `loom_common.errors` (one
table, the field from a google.rpc.BadRequest detail); this maps that tree to HTTP answers.
"""

from __future__ import annotations

from collections.abc import Callable

from loom_common import errors
from loom_gateway.domain.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound, RateLimited, Upstream

# The most specific class of the error's MRO found here decides.
_HTTP: dict[type[errors.LoomError], Callable[[errors.LoomError, str], ApiError]] = {
    errors.InvalidArgument: lambda e, s: BadRequest(e.detail or e.message, field=getattr(e, "field", None)),
    errors.NotFound: lambda e, s: NotFound(e.detail or "Not found."),
    errors.AlreadyExists: lambda e, s: Conflict(e.detail, code="dataset_name_duplicate" if s == "rag" else "conflict"),
    errors.FailedPrecondition: lambda e, s: BadRequest(e.detail, code="failed_precondition"),
    errors.PermissionDenied: lambda e, s: Forbidden(e.detail),
    # An engine's full queue: the client may try again shortly.
    errors.ResourceExhausted: lambda e, s: RateLimited(e.detail or "The model is busy; try again later.",
                                                       retry_after_s=1),
    errors.DeadlineExceeded: lambda e, s: Upstream(f"{s} timed out", code="gateway_timeout", status=504),
    errors.Unavailable: lambda e, s: Upstream(f"{s} is unavailable: {e.detail}"),
}


def api_error(err: errors.LoomError, service: str) -> ApiError:
    for kind in type(err).__mro__:
        if kind in _HTTP:
            return _HTTP[kind](err, service)
    return Upstream(f"{service} failed: {err.grpc_status} {err.detail}", status=502, code="bad_gateway")
