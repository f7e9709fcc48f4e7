"""Typed refusals: every failed invocation carries one `code` the caller can show.

    ToolError(code, message)
    ├── InvalidArguments   invalid_arguments   arguments do not match the tool's JSON schema
    ├── NotFound           not_found           no such tool for this tenant
    ├── SsrfBlocked        ssrf_blocked        destination address/scheme refused
    ├── SqlRefused         sql_refused         statement is not a single read-only SELECT
    ├── SandboxLimit       sandbox_limit       CPU/memory/process/output limit hit
    ├── SandboxUnavailable sandbox_unavailable isolation layer missing and degrading not allowed
    ├── SandboxBusy        sandbox_busy        every sandbox slot stayed taken past the queue wait
    ├── ToolTimeout        timeout             wall-clock or statement timeout
    ├── ResponseTooLarge   response_too_large  upstream body over the size limit
    ├── UpstreamError      upstream_error      the remote API/database answered with an error
    ├── CodeError          code_error          user code raised
    └── Conflict           conflict            a tool of that name exists already
Anything else escaping a tool becomes `internal` at the executor, never a crash.

Each refusal with a gRPC status of its own is also a leaf of loom_common's error tree (listed
first, so its `grpc_status` wins): InvalidArguments and SqlRefused are InvalidArgument, NotFound
is NotFound, SsrfBlocked PermissionDenied, Conflict AlreadyExists, ToolTimeout DeadlineExceeded,
SandboxBusy ResourceExhausted; the rest answer FAILED_PRECONDITION. The management RPCs abort
with that status, the code and the field (loom_common.grpc_errors.abort).
"""

from __future__ import annotations

from loom_common import errors


class ToolError(errors.LoomError):
    code, grpc_status = "internal", "FAILED_PRECONDITION"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class InvalidArguments(errors.InvalidArgument, ToolError):
    code = "invalid_arguments"


class NotFound(errors.NotFound, ToolError):
    code = "not_found"


class SsrfBlocked(errors.PermissionDenied, ToolError):
    code = "ssrf_blocked"


class SqlRefused(errors.InvalidArgument, ToolError):
    code = "sql_refused"


class SandboxLimit(ToolError):
    code = "sandbox_limit"


class SandboxUnavailable(ToolError):
    code = "sandbox_unavailable"


class SandboxBusy(errors.ResourceExhausted, ToolError):
    code = "sandbox_busy"


class ToolTimeout(errors.DeadlineExceeded, ToolError):
    code = "timeout"


class ResponseTooLarge(ToolError):
    code = "response_too_large"


class UpstreamError(ToolError):
    code = "upstream_error"


class CodeError(ToolError):
    code = "code_error"


class Conflict(errors.AlreadyExists, ToolError):
    code = "conflict"
