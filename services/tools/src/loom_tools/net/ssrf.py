"""The SSRF guard: decide whether a URL's destination may be contacted, and where exactly.

The host is resolved HERE and every address it resolves to is vetted; the caller then
connects to the vetted address itself (never resolving again), which closes the DNS
rebinding gap between check and use. Refused: non-http(s) schemes and any address that is
loopback, private, link-local, multicast, unspecified, reserved, shared (CGNAT) or a cloud
metadata endpoint, for IPv4 and IPv6, looking through IPv4-mapped, 6to4, Teredo and NAT64
wrappers. An explicit allowlist of hosts (as written in the URL) skips the vetting.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from loom_tools.errors import InvalidArguments, SsrfBlocked

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

# Metadata services answer on addresses the generic checks already refuse (link-local, ULA,
# CGNAT); naming them gives the caller a clearer reason.
METADATA = {ipaddress.ip_address(a) for a in (
    "169.254.169.254",   # AWS, GCP, Azure, OpenStack, DigitalOcean
    "169.254.170.2",     # AWS ECS task metadata
    "fd00:ec2::254",     # AWS IMDS over IPv6
    "100.100.100.200",   # Alibaba Cloud
)}
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_v4(ip: IP) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IP) -> str | None:
    """Why this address may not be contacted, or None when it is a public unicast address."""
    inner = _embedded_v4(ip)
    if inner is not None:
        why = refusal(inner)
        return f"{why} (embedded in {ip})" if why else None
    if ip in METADATA:
        return "a cloud metadata address"
    for attr, why in (("is_loopback", "a loopback address"), ("is_unspecified", "the unspecified address"),
                      ("is_link_local", "a link-local address"), ("is_multicast", "a multicast address"),
                      ("is_private", "a private address"), ("is_reserved", "a reserved address")):
        if getattr(ip, attr):
            return why
    if not ip.is_global:
        return "not a public address"
    return None


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
