"""Errors the gateway answers with, in Dify's shape `{code, message, status}`.

    ApiError (status, code)
     ├── BadRequest          400 invalid_param (names the field)
     ├── Unauthorized        401 unauthorized
     ├── Forbidden           403 forbidden
     ├── NotFound            404 <thing>_not_exists / not_found
     ├── Conflict            409 conflict
     ├── PayloadTooLarge     413 file_too_large / request_too_large
     ├── RateLimited         429 too_many_requests (with retry_after)
     ├── QuotaExceeded       429 quota_exceeded
     ├── Upstream            502/503/504 a Loom service failed or was unreachable
     ├── Overloaded          503 overloaded (with retry_after): the run queue is full

Transport maps every one of these to a JSON response; anything else is a 500 and a bug.

They are `LoomError`s, the one error tree of every service (loom_common.errors): each also
carries the gRPC status that means the same (`grpc_status`), so a gateway error passed on to
another hop, or logged beside the other services' errors, reads the same way.
"""

from __future__ import annotations

from loom_common.errors import LoomError

# HTTP status -> the gRPC status of the same meaning (https://grpc.github.io/grpc/core/md_doc_http-grpc-status-mapping.html,
# read the other way round).
_GRPC_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                409: "ALREADY_EXISTS", 413: "RESOURCE_EXHAUSTED", 429: "RESOURCE_EXHAUSTED", 502: "UNAVAILABLE",
                503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class ApiError(LoomError):
    status: int = 500
    code: str = "internal_server_error"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 field: str | None = None):
        super().__init__(message, code=code)
        self.field = field
        if status is not None:
            self.status = status

    @property
    def grpc_status(self) -> str:  # type: ignore[override]  # follows `status`, which an instance may change
        return _GRPC_STATUS.get(self.status, "INTERNAL" if self.status >= 500 else "FAILED_PRECONDITION")

    def body(self) -> dict:
        out = {"code": self.code, "message": self.message, "status": self.status}
        if self.field:
            out["field"] = self.field
        return out


class BadRequest(ApiError):
    status, code = 400, "invalid_param"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message, field=field, code=code)


def wrong_app_mode(code: str) -> BadRequest:
    """Dify's answer to a route the app's mode does not serve (not_chat_app, not_workflow_app, ...)."""
    return BadRequest("Please check if your app mode matches the right API route.", code=code)


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "request_too_large"


class RateLimited(ApiError):
    status, code = 429, "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int = 1, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class QuotaExceeded(RateLimited):
    code = "quota_exceeded"


class Upstream(ApiError):
    status, code = 503, "service_unavailable"


class Overloaded(ApiError):
    """Too much work queued to take more now (run_admission.py): 503 with Retry-After."""

    status, code = 503, "overloaded"

    def __init__(self, message: str, *, retry_after_s: int = 2):
        super().__init__(message)
        self.retry_after_s = retry_after_s
