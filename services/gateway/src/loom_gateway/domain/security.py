"""Secrets: argon2 password hashes, console JWTs (access + refresh) and API keys.

API keys are random (`app-` / `dataset-` + 24 url-safe bytes), shown once, stored as SHA-256:
a key has 192 bits of entropy, so a fast hash is enough and lookups stay one index probe
(argon2 is for low-entropy passwords).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from loom_gateway.domain.errors import Unauthorized

_hasher = PasswordHasher()
APP_KEY_PREFIX = "app-"
DATASET_KEY_PREFIX = "dataset-"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password against its hash. Without one (no such account), a made-up hash is
    checked instead, so an unknown e-mail costs the same argon2 work as a known one and the
    answer's timing does not tell which e-mails have accounts."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(24)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def hint(secret: str) -> str:
    """What the console shows of a key after creation: prefix and last four characters."""
    head = secret.split("-", 1)[0] + "-"
    return f"{head}…{secret[-4:]}"


@dataclass(frozen=True)
class Claims:
    account_id: str
    kind: str          # access | refresh
    token_id: str
    expires_at: int


class TokenIssuer:
    def __init__(self, secret: str, access_ttl_s: int, refresh_ttl_s: int):
        self._secret = secret
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s

    def issue(self, account_id: str, kind: str, token_id: str) -> tuple[str, int]:
        ttl = self.access_ttl_s if kind == "access" else self.refresh_ttl_s
        exp = int(time.time()) + ttl
        token = jwt.encode({"sub": account_id, "typ": kind, "jti": token_id, "exp": exp, "iss": "loom"},
                           self._secret, algorithm="HS256")
        return token, exp

    def verify(self, token: str, kind: str) -> Claims:
        try:
            data = jwt.decode(token, self._secret, algorithms=["HS256"], issuer="loom",
                              options={"require": ["exp", "sub", "typ", "jti"]})
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("Token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("Access token is invalid.") from exc
        if data.get("typ") != kind:
            raise Unauthorized(f"Not a {kind} token.")
        return Claims(account_id=data["sub"], kind=kind, token_id=data["jti"], expires_at=data["exp"])
