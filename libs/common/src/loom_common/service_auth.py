"""Service identity on internal calls: a short-lived signed token that names the calling service
and the tenant it acts for.

A token is a JWT (HS256) signed with one secret every Loom service shares:

    {"iss": "loom-gateway", "aud": "loom-internal", "tenant": "<tenant id or empty>",
     "iat": ..., "exp": iat + 5 min}

The secret comes from `LOOM_SERVICE_TOKEN_SECRET` (a Kubernetes Secret in production) or, when
unset, from `$LOOM_HOME/secrets/service-token`, generated (mode 0600) by the first process that
needs it, so the embedded stack needs no step from the user. Who holds the secret can act as any
service for any tenant: it is the key to the internal network, kept like a database password.

Callers attach a token through `grpc_client.call_metadata` (the one place call metadata is
built); servers verify it in `grpc_auth.ServiceTokenInterceptor` (installed by the runtime, the
one place servers are made). Both sides cache: a caller reuses a tenant's token for 4 minutes,
a server remembers tokens it verified until they expire.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from loom_common import secret_files
from loom_common.settings import loom_home

AUDIENCE = "loom-internal"
TTL_S = 300.0
REUSE_S = 240.0  # a cached token still has a minute to live when sent
_CACHE_MAX = 10_000
SECRET_ENV = "LOOM_SERVICE_TOKEN_SECRET"


class InvalidServiceToken(Exception):
    """A missing, forged, expired or malformed service token."""


@dataclass(frozen=True)
class ServiceClaims:
    service: str
    tenant: str  # "" when the call acts for no tenant (list models, health)
    expires_at: float


def secret_path(home: Path | None = None) -> Path:
    home = home or loom_home()
    return home / "secrets" / "service-token"


def load_secret(home: Path | None = None) -> str:
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV]
    return secret_files.read_or_create(secret_path(home), lambda: secrets.token_urlsafe(48).encode()).decode().strip()


class ServiceAuth:
    """Issues this process's tokens and verifies its peers'."""

    def __init__(self, service: str, secret: str) -> None:
        if len(secret) < 32:
            raise ValueError("the service token secret must be at least 32 characters")
        self.service = service
        self._secret = secret
        self._issued: dict[str, tuple[str, float]] = {}
        self._verified: dict[str, ServiceClaims] = {}

    def token(self, tenant_id: str | None = None) -> str:
        tenant = tenant_id or ""
        now = time.time()
        cached = self._issued.get(tenant)
        if cached and cached[1] > now:
            return cached[0]
        claims = {"iss": f"loom-{self.service}", "aud": AUDIENCE, "tenant": tenant, "iat": int(now),
                  "exp": int(now + TTL_S)}
        token = jwt.encode(claims, self._secret, algorithm="HS256")
        if len(self._issued) >= _CACHE_MAX:
            self._issued.clear()
        self._issued[tenant] = (token, now + REUSE_S)
        return token

    def verify(self, token: str | None) -> ServiceClaims:
        if not token:
            raise InvalidServiceToken("no service token")
        now = time.time()
        known = self._verified.get(token)
        if known is not None and known.expires_at > now:
            return known
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], audience=AUDIENCE,
                                options={"require": ["exp", "iat", "iss", "aud"]})
        except jwt.PyJWTError as exc:
            raise InvalidServiceToken(f"bad service token: {type(exc).__name__}") from None
        tenant = claims.get("tenant", "")
        if not isinstance(tenant, str):
            raise InvalidServiceToken("bad service token: tenant is not a string")
        verified = ServiceClaims(service=str(claims["iss"]), tenant=tenant, expires_at=float(claims["exp"]))
        if len(self._verified) >= _CACHE_MAX:
            self._verified.clear()
        self._verified[token] = verified
        return verified


_current: ServiceAuth | None = None


def configure(service: str, secret: str | None = None) -> ServiceAuth:
    """Set this process's identity (the runtime calls it at start-up)."""
    global _current
    _current = ServiceAuth(service, secret or load_secret())
    return _current


def current() -> ServiceAuth:
    """This process's identity; a process that configured none (a CLI, a test) signs as `client`."""
    return _current if _current is not None else configure("client")
