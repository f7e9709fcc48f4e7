"""What can go wrong in the RAG domain, with the transport status each maps to.

    LoomError (loom_common.errors)
     ├── RetryableError              a dependency is down (inference, storage): UNAVAILABLE
     └── PermanentError
          ├── NotFound               no such id for this tenant: NOT_FOUND
          ├── AlreadyExists          duplicate dataset name: ALREADY_EXISTS
          ├── InvalidArgument        bad input, names the field: INVALID_ARGUMENT
          ├── EmbeddingMismatch      query/vectors from another model or dimension: FAILED_PRECONDITION
          └── BadDocument            a file that cannot be parsed; the document goes to `error`
"""

from __future__ import annotations

from loom_common.documents import UnreadableDocument
from loom_common.errors import PermanentError


class NotFound(PermanentError):
    code = "not_found"


class AlreadyExists(PermanentError):
    code = "already_exists"


class InvalidArgument(PermanentError):
    code = "invalid_argument"

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class EmbeddingMismatch(PermanentError):
    code = "embedding_mismatch"


# A file that cannot be parsed: the shared parsers' error (loom_common.documents), by rag's name.
BadDocument = UnreadableDocument
