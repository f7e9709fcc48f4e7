"""Object keys for raw files: tenant-first, so a tenant's files share one prefix."""

from __future__ import annotations

import re

from loom_rag.domain.errors import InvalidArgument

_UNSAFE = re.compile(r"[^\w.\-]+")


def document_key(tenant_id: str, dataset_id: str, document_id: str, revision: int, name: str) -> str:
    safe = _UNSAFE.sub("_", name).strip("._")[:120] or "file"
    return f"{_part(tenant_id)}/{dataset_id}/{document_id}/{revision}-{safe}"


def _part(value: str) -> str:
    return _UNSAFE.sub("_", value)[:120] or "_"


def validate_key(key: str) -> str:
    """Refuse keys that could leave the store's root ("..", absolute, empty parts)."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidArgument("key", f"bad storage key {key!r}")
    return key
