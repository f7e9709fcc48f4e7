"""Secrets the gateway must use again later (a model endpoint's API key, an S3 secret key),
sealed at rest with Fernet (AES-128-CBC + HMAC-SHA256) and never returned by the API.

The key is `LOOM_GATEWAY_SECRET_KEY`, else one generated once into
`$LOOM_HOME/gateway/secret.key`, created with mode 0600 (never widened and narrowed after).
Losing that file makes sealed values unreadable (they read as unset), so production sets it.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from loom_common import secret_files
from loom_common.logging import get_logger

log = get_logger(__name__)


def load_key(configured: str | None, home: Path) -> bytes:
    if configured:
        return configured.encode()
    # Born 0600 and published whole: replicas starting together all read the first one's key.
    return secret_files.read_or_create(home / "secret.key", Fernet.generate_key).strip()


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, secret: str | None) -> bytes | None:
        return self._fernet.encrypt(secret.encode()) if secret else None

    def open(self, token: bytes | None) -> str | None:
        if token is None:
            return None
        try:
            return self._fernet.decrypt(bytes(token)).decode()
        except InvalidToken:
            log.error("a sealed secret cannot be opened with the current key; it reads as unset")
            return None


def hint(secret: str | None) -> str:
    """What the console shows of a stored secret: its last four characters, never more."""
    if not secret:
        return ""
    return f"…{secret[-4:]}" if len(secret) >= 12 else "…"
