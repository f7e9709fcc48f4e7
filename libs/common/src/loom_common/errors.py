"""The two kinds of failure a side effect can raise, and what each means for a retry.

    LoomError
     ├── RetryableError   try again later (timeouts, overload, a dependency restarting)
     ├── PermanentError   trying again cannot help (bad input, not found, refused)
     └── Superseded       this delivery of a message is stale: a newer delivery owns the work

Handlers on the bus map these to JetStream acks: retryable -> nack with a delay (redelivery),
permanent -> term (never redelivered, recorded as failed), superseded -> left unsettled (the
newer delivery settles the message; acking or nacking here would end or restart its work).
"""

from __future__ import annotations


class LoomError(Exception):
    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class RetryableError(LoomError):
    code = "retryable"

    def __init__(self, message: str, *, code: str | None = None, next_retry_delay_s: float | None = None):
        super().__init__(message, code=code)
        self.next_retry_delay_s = next_retry_delay_s


class PermanentError(LoomError):
    code = "permanent"


class Superseded(LoomError):
    """Raised by a handler that finds a newer delivery of its message already took the work
    (e.g. JetStream redelivered it while this copy sat in a local buffer past its ack wait)."""

    code = "superseded"
