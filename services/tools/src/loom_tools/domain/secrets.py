"""Credentials encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

The key comes from `LOOM_TOOLS_SECRET_KEY`. In development, when it is unset, a key is
generated once into `<LOOM_HOME>/tools/secret.key` (mode 0600) and reused; losing that file
makes stored credentials unreadable, so production sets the key explicitly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from loom_common import secret_files
from loom_common.logging import get_logger

log = get_logger(__name__)


def load_key(secret_key: str | None, home: Path) -> bytes:
    if secret_key:
        return secret_key.encode()
    path = home / "tools" / "secret.key"
    if not path.exists():
        log.warning("using a development secret key; set LOOM_TOOLS_SECRET_KEY in production", path=str(path))
    return secret_files.read_or_create(path, Fernet.generate_key)


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, credentials: dict[str, Any] | None) -> bytes | None:
        if not credentials:
            return None
        return self._fernet.encrypt(json.dumps(credentials).encode())

    def open(self, token: bytes | None) -> dict[str, Any] | None:
        if token is None:
            return None
        try:
            return json.loads(self._fernet.decrypt(bytes(token)))
        except InvalidToken:
            # A rotated key: the tool stays listed but runs without its credentials.
            log.error("tool credentials cannot be decrypted with the current key")
            return None
