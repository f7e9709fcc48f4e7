"""Secrets kept as small files (a signing key, a generated password) under `$LOOM_HOME`.

A secret file is created with mode 0600 in the same system call that creates it (never written
first and narrowed after), and published whole under its final name with a hard link, which
fails if the name exists: processes starting together all end up reading the first writer's
value, and an existing secret is never overwritten.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """The secret stored at `path`, created from `make()` (mode 0600) if there is none yet."""
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(make())
        with contextlib.suppress(FileExistsError):  # another process won: read its value
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return path.read_bytes()
