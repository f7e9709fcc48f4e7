"""URLs of servers a workspace admin points the gateway at (model endpoints, an S3 endpoint):
bounded, http(s) only, no credentials in the URL, and every address the host resolves to
vetted with the project's SSRF decision (`loom_common.ssrf.refusal`).

Loopback and private addresses are refused unless the operator allows them
(`LOOM_GATEWAY_ENDPOINTS_ALLOW_LOOPBACK`, `..._ALLOW_PRIVATE`: a model server on the same host
or LAN is common, but a console user must not reach the gateway's neighbours by default);
link-local and cloud metadata addresses are refused always. Calls the gateway makes go to
the vetted address itself (`pinned`), so a name that resolves differently a moment later
(DNS rebinding) cannot redirect them.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from loom_common.ssrf import METADATA, Unresolvable, refusal, resolve
from loom_gateway.domain.errors import BadRequest

MAX_URL = 2048


@dataclass(frozen=True)
class UrlPolicy:
    allow_loopback: bool = False
    allow_private: bool = False
    resolve_timeout_s: float = 5.0


@dataclass(frozen=True)
class Vetted:
    url: str       # normalised: no trailing slash
    scheme: str
    host: str      # as written, lower-case, no brackets
    port: int
    ip: str        # the vetted address to connect to

    def pinned(self, path: str) -> tuple[str, dict[str, str], dict[str, str]]:
        """(url, headers, httpx extensions) that reach `path` under this URL at the vetted address."""
        parts = urlsplit(self.url + path)
        ip = f"[{self.ip}]" if ":" in self.ip else self.ip
        url = urlunsplit((parts.scheme, f"{ip}:{self.port}", parts.path, parts.query, ""))
        default = 443 if self.scheme == "https" else 80
        host = self.host if self.port == default else f"{self.host}:{self.port}"
        return url, {"Host": host}, ({"sni_hostname": self.host} if self.scheme == "https" else {})


def _allowed(ip, policy: UrlPolicy) -> str | None:
    why = refusal(ip)
    if why is None or ip in METADATA:
        return why
    inner = getattr(ip, "ipv4_mapped", None) or ip
    if policy.allow_loopback and inner.is_loopback:
        return None
    if policy.allow_private and inner.is_private and not inner.is_link_local and not inner.is_loopback:
        return None
    return why


async def vet(url: str, policy: UrlPolicy, *, field: str) -> Vetted:
    """Check and resolve `url`; a 400 naming `field` says what is wrong with it."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise BadRequest(f"{field} must be a URL of at most {MAX_URL} characters", field=field)
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BadRequest(f"{field}: scheme {scheme or '(none)'!r} refused: only http and https", field=field)
    if parts.username or parts.password:
        raise BadRequest(f"{field} must not hold credentials (use the API key field)", field=field)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise BadRequest(f"{field}: {exc}", field=field) from None
    if not host:
        raise BadRequest(f"{field} has no host", field=field)
    port = port or (443 if scheme == "https" else 80)
    addresses = await _resolve(host, port, policy, field)
    for ip in addresses:
        why = _allowed(ip, policy)
        if why:
            raise BadRequest(f"{field}: {host} resolves to {ip}, {why}", code="ssrf_blocked", field=field)
    clean = urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), parts.query, ""))
    return Vetted(clean, scheme, host.lower(), port, str(addresses[0]))


async def _resolve(host: str, port: int, policy: UrlPolicy, field: str) -> list:
    # Every address, odd spellings (2130706433, 0x7f.1) included: all get vetted.
    try:
        return await resolve(host, port, timeout_s=policy.resolve_timeout_s)
    except Unresolvable as exc:
        raise BadRequest(f"{field}: {exc}", field=field) from None
