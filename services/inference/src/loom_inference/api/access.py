"""Who may use the model API on 11434 (the Ollama and OpenAI routes), checked before any route.

Ollama's habit is kept: bound to loopback and with no token set, the API is open to local
programs. On top of that, in this order:

  1. Host allow-list (DNS rebinding): a browser page on `evil.example` whose name is re-pointed
     at 127.0.0.1 still sends `Host: evil.example`, so such a request is refused (403). Allowed:
     localhost and *.localhost, any IP literal (a page served from an IP is that server itself,
     so an IP cannot be rebound), the bind host, and the names in `allowed_hosts`.
  2. Origin allow-list: a browser request from another site carries its `Origin`; one that is
     not an allowed host (same rule) nor in `network.cors_origins` is refused (403).
  3. API token (`LOOM_INFERENCE_API_TOKEN`): when set, every request needs
     `Authorization: Bearer <token>` (401 without it). A bind to anything but loopback refuses
     to start without one (`check_bind`).
  4. Mutating routes (pull, delete, create, copy, push, blobs) change what the engine holds
     and reads from disk or the network: with `LOOM_INFERENCE_ADMIN_TOKEN` set they need that
     token (the API token is not enough); without one they are served only to loopback peers.

Health, readiness and metrics are not model routes and are left to the runtime.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

MUTATING = frozenset({"/api/pull", "/api/delete", "/api/create", "/api/copy", "/api/push"})


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_of(authority: str) -> str:
    """'[::1]:11434' -> '::1', 'Example.COM.:80' -> 'example.com'."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0]
    return authority.rsplit(":", 1)[0].rstrip(".") if authority.count(":") == 1 else authority.rstrip(".")


class BindRefused(RuntimeError):
    """A non-loopback bind without an API token."""


def check_bind(bind_host: str, api_token: str | None) -> None:
    if not is_loopback(bind_host) and not api_token:
        raise BindRefused(f"the model API is bound to {bind_host!r}, which is not loopback, and no "
                          "LOOM_INFERENCE_API_TOKEN is set: refusing to start an open model API on the "
                          "network (set a token, or bind to 127.0.0.1)")


@dataclass(frozen=True)
class AccessPolicy:
    api_token: str | None = None
    admin_token: str | None = None
    allowed_hosts: frozenset[str] = frozenset()
    cors_origins: frozenset[str] = frozenset()

    @classmethod
    def build(cls, *, bind_host: str, api_token: str | None, admin_token: str | None,
              allowed_hosts: list[str], cors_origins: list[str]) -> AccessPolicy:
        hosts = {"localhost", *(h.lower().rstrip(".") for h in allowed_hosts)}
        if bind_host and not _is_ip(bind_host.strip("[]")):
            hosts.add(bind_host.lower())
        return cls(api_token or None, admin_token or None, frozenset(hosts),
                   frozenset(o.rstrip("/") for o in cors_origins))

    def host_allowed(self, host: str) -> bool:
        return _is_ip(host) or host in self.allowed_hosts or host.endswith(".localhost")

    def refusal(self, method: str, path: str, headers: dict[str, str], peer: str | None) -> tuple[int, str] | None:
        """(status, message) when the request must be refused, else None."""
        host = headers.get("host")
        if host is not None and not self.host_allowed(_host_of(host)):
            return 403, f"Host {host!r} is not allowed (add it to LOOM_INFERENCE_ALLOWED_HOSTS)"
        origin = headers.get("origin")
        if origin is not None and origin.rstrip("/") not in self.cors_origins:
            origin_host = urlsplit(origin).hostname or ""
            if not origin_host or not self.host_allowed(origin_host.rstrip(".")):
                return 403, f"Origin {origin!r} is not allowed"
        if method == "OPTIONS":  # a CORS preflight carries no credentials
            return None
        token = _bearer(headers.get("authorization", ""))
        admin = self.admin_token is not None and hmac.compare_digest(token.encode(), self.admin_token.encode())
        if self.api_token is not None and not admin and not hmac.compare_digest(token.encode(),
                                                                                self.api_token.encode()):
            return 401, "a valid API token is required (Authorization: Bearer <token>)"
        if path in MUTATING or path.startswith("/api/blobs/"):
            if self.admin_token is not None:
                if not admin:
                    return 403, f"{path} needs the admin token (LOOM_INFERENCE_ADMIN_TOKEN)"
            elif not (peer and is_loopback(peer)):
                return 403, f"{path} is served only to local clients unless an admin token is set"
        return None


def _bearer(value: str) -> str:
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _model_route(path: str) -> bool:
    return path == "/" or path.startswith(("/api/", "/v1/"))


class AccessMiddleware:
    """ASGI middleware applying an `AccessPolicy` to the model routes (streams pass untouched)."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app, self.policy = app, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _model_route(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        peer = scope["client"][0] if scope.get("client") else None
        refused = self.policy.refusal(scope["method"], scope["path"], headers, peer)
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, message = refused
        if scope["path"].startswith("/v1/"):  # OpenAI's error shape, as the routes answer
            body = {"error": {"message": message, "type": "invalid_request_error", "param": None,
                              "code": "unauthorized" if status == 401 else "forbidden"}}
        else:
            body = {"error": message}
        data = json.dumps(body).encode()
        extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode()), *extra]})
        await send({"type": "http.response.body", "body": data})
