"""The SSRF guard: decide whether a URL's destination may be contacted, and where exactly.

The host is resolved HERE and every address it resolves to is vetted; the caller then
connects to the vetted address itself (never resolving again), which closes the DNS
rebinding gap between check and use. Refused: non-http(s) schemes and any address that
`loom_common.ssrf.refusal` refuses (loopback, private, link-local, metadata, ...): that
decision is shared with inference's /api/pull, so it lives in libs/common and is re-exported
here. An explicit allowlist of hosts (as written in the URL) skips the vetting.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from loom_common.ssrf import IP, METADATA, NAT64, refusal
from loom_tools.errors import InvalidArguments, SsrfBlocked

__all__ = ["IP", "METADATA", "NAT64", "Guard", "Target", "refusal"]


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str          # as written in the URL, lower-case, no brackets
    port: int
    ip: str            # the vetted address to connect to


class Guard:
    def __init__(self, allowlist: frozenset[str] = frozenset(), resolve_timeout_s: float = 5.0) -> None:
        self.allowlist = allowlist
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
        addresses = await self._resolve(host, port)
        if host not in self.allowlist:
            for ip in addresses:
                why = refusal(ip)
                if why:
                    raise SsrfBlocked(f"{host} resolves to {ip}, {why}", field="url")
        return Target(scheme, host, port, str(addresses[0]))

    async def _resolve(self, host: str, port: int) -> list[IP]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), self._resolve_timeout_s)
        except (OSError, TimeoutError) as exc:
            raise SsrfBlocked(f"cannot resolve {host!r}: {exc}", field="url") from exc
        # getaddrinfo also turns odd spellings (2130706433, 0x7f.1) into addresses: all get vetted.
        found = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
        if not found:
            raise SsrfBlocked(f"{host!r} resolves to no address", field="url")
        return found
