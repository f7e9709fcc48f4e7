"""What can go wrong in the RAG domain, with the transport status each maps to.

    LoomError (loom_common.errors; each class's `grpc_status` is what the servicer answers)
     ├── RetryableError              a dependency is down (inference, storage): UNAVAILABLE
     └── PermanentError
          ├── NotFound               no such id for this tenant: NOT_FOUND
          ├── AlreadyExists          duplicate dataset name: ALREADY_EXISTS
          ├── InvalidArgument        bad input, names the field: INVALID_ARGUMENT (+ BadRequest)
          ├── EmbeddingMismatch      query/vectors from another model or dimension: FAILED_PRECONDITION
          └── BadDocument            a file that cannot be parsed; the document goes to `error`
"""

from __future__ import annotations

from loom_common import errors
from loom_common.documents import UnreadableDocument

# The shared tree's leaves, by rag's names.
NotFound = errors.NotFound
AlreadyExists = errors.AlreadyExists


class InvalidArgument(errors.InvalidArgument):
    """Rag's spelling, field first; the message names the field too ("top_k: must be ...")."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}", field=field)


class EmbeddingMismatch(errors.FailedPrecondition):
    code = "embedding_mismatch"


# A file that cannot be parsed: the shared parsers' error (loom_common.documents), by rag's name.
BadDocument = UnreadableDocument
