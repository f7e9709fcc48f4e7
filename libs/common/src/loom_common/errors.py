"""The kinds of failure a side effect can raise, and what each means for a retry.

    LoomError                      code, grpc_status (class attributes)
     ├── RetryableError            try again later                          UNAVAILABLE
     │    ├── Unavailable          a dependency is down or restarting       UNAVAILABLE
     │    ├── DeadlineExceeded     it did not answer in time                DEADLINE_EXCEEDED
     │    ├── ResourceExhausted    it is full (an engine's queue)           RESOURCE_EXHAUSTED
     │    └── Aborted              a concurrent change or a cancelled call  ABORTED
     ├── PermanentError            trying again cannot help                 FAILED_PRECONDITION
     │    ├── InvalidArgument      bad input; names the `field`             INVALID_ARGUMENT
     │    ├── NotFound             no such thing (for this tenant)          NOT_FOUND
     │    ├── AlreadyExists        a duplicate name                         ALREADY_EXISTS
     │    ├── PermissionDenied     refused (SSRF guard, wrong tenant)       PERMISSION_DENIED
     │    ├── Unauthenticated      no or bad service token                  UNAUTHENTICATED
     │    ├── FailedPrecondition   the state does not allow it              FAILED_PRECONDITION
     │    └── Internal             a bug on the other side                  INTERNAL
     └── Superseded                this delivery of a message is stale: a newer delivery owns the work

`grpc_status` is the name of a `grpc.StatusCode` (a string, so this module and the domain code
raising these errors import no transport); `loom_common.grpc_errors` maps statuses to these
classes and back, in one table, and carries an `InvalidArgument`'s field as a
`google.rpc.BadRequest` detail.

Handlers on the bus map these to JetStream acks: retryable -> nack with a delay (redelivery),
permanent -> term (never redelivered, recorded as failed), superseded -> left unsettled (the
newer delivery settles the message; acking or nacking here would end or restart its work).
"""

from __future__ import annotations


class LoomError(Exception):
    code: str = "error"
    grpc_status: str = "UNKNOWN"
    # Set on an error read back from a failed call (loom_common.grpc_errors.error_from_rpc):
    service: str = ""  # the service called
    detail: str = ""  # the server's own text, without the service and status prefix
    field: str | None = None  # the input at fault, where one is (always named by InvalidArgument)

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class RetryableError(LoomError):
    code = "retryable"
    grpc_status = "UNAVAILABLE"

    def __init__(self, message: str, *, code: str | None = None, next_retry_delay_s: float | None = None):
        super().__init__(message, code=code)
        self.next_retry_delay_s = next_retry_delay_s


class PermanentError(LoomError):
    code = "permanent"
    grpc_status = "FAILED_PRECONDITION"


class Unavailable(RetryableError):
    code, grpc_status = "unavailable", "UNAVAILABLE"


class DeadlineExceeded(RetryableError):
    code, grpc_status = "deadline_exceeded", "DEADLINE_EXCEEDED"


class ResourceExhausted(RetryableError):
    code, grpc_status = "resource_exhausted", "RESOURCE_EXHAUSTED"


class Aborted(RetryableError):
    code, grpc_status = "aborted", "ABORTED"


class InvalidArgument(PermanentError):
    """Bad input. `field` names it (a dotted path such as `process_rule.segmentation.max_tokens`)
    so the gateway can answer 400 naming the field; on the wire it is a google.rpc.BadRequest."""

    code, grpc_status = "invalid_argument", "INVALID_ARGUMENT"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message, code=code)
        self.field = field


class NotFound(PermanentError):
    code, grpc_status = "not_found", "NOT_FOUND"


class AlreadyExists(PermanentError):
    code, grpc_status = "already_exists", "ALREADY_EXISTS"


class PermissionDenied(PermanentError):
    code, grpc_status = "permission_denied", "PERMISSION_DENIED"


class Unauthenticated(PermanentError):
    code, grpc_status = "unauthenticated", "UNAUTHENTICATED"


class FailedPrecondition(PermanentError):
    code, grpc_status = "failed_precondition", "FAILED_PRECONDITION"


class Internal(PermanentError):
    code, grpc_status = "internal", "INTERNAL"


class Superseded(LoomError):
    """Raised by a handler that finds a newer delivery of its message already took the work
    (e.g. JetStream redelivered it while this copy sat in a local buffer past its ack wait)."""

    code = "superseded"
