"""The SSRF guard: decide whether a URL's destination may be contacted, and where exactly.

The host is resolved HERE and every address it resolves to is vetted; the caller then
connects to the vetted address itself (never resolving again), which closes the DNS
rebinding gap between check and use. Refused: non-http(s) schemes and any address that
`loom_common.ssrf.refusal` refuses (loopback, private, link-local, metadata, ...): that
decision is shared with inference's /api/pull, so it lives in libs/common and is re-exported
here. Resolving and the operator's allow-list of private targets live in `targets.py`, shared
with SQL connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from loom_common.ssrf import IP, METADATA, NAT64, refusal
from loom_tools.errors import InvalidArguments, SsrfBlocked
from loom_tools.net.targets import PrivateTargets, vet_host

__all__ = ["IP", "METADATA", "NAT64", "Guard", "PrivateTargets", "Target", "refusal"]


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str          # as written in the URL, lower-case, no brackets
    port: int
    ip: str            # the vetted address to connect to


class Guard:
    """Vets URLs against the SSRF rules and the operator's private targets (`targets.py`).

    `allowlist`, the older setting `LOOM_TOOLS_HTTP_ALLOWLIST`, names hosts as written in URLs."""

    def __init__(self, allowlist: frozenset[str] = frozenset(), resolve_timeout_s: float = 5.0, *,
                 private: PrivateTargets | None = None) -> None:
        base = private or PrivateTargets()
        self.allowed = PrivateTargets(base.names | {(h, None) for h in allowlist}, base.networks)
        self._resolve_timeout_s = resolve_timeout_s

    async def vet(self, url: str) -> Target:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise SsrfBlocked(f"scheme {scheme or '(none)'!r} refused: only http and https", field="url")
        try:
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise InvalidArguments(f"argument 'url': {exc}", field="url") from exc
        if not host:
            raise InvalidArguments("argument 'url': no host", field="url")
        port = port or (443 if scheme == "https" else 80)
        # getaddrinfo also turns odd spellings (2130706433, 0x7f.1) into addresses: all get vetted.
        ip = await vet_host(host, port, self.allowed, timeout_s=self._resolve_timeout_s, field="url")
        return Target(scheme, host, port, str(ip))
