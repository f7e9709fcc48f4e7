"""The SSRF decision, shared by every service that fetches a URL a user chose (tools' http
tools, inference's `/api/pull`): may this address be contacted?

`refusal(ip)` answers why not, or None for a public unicast address. Refused: loopback,
private, link-local, site-local (fec0::/10, deprecated but still routed on some networks),
multicast, unspecified, reserved, shared (CGNAT) and cloud metadata addresses, for IPv4 and
IPv6, looking through IPv4-mapped, 6to4, Teredo and NAT64 wrappers.
`resolve(host, port)` gives every address a host stands for (the one resolver of the gateway's
endpoint URLs, tools' targets and inference's pulls); it raises `Unresolvable`, which each
caller turns into its own error. Pinning the connection to the vetted address is each caller's
job (tools: `loom_tools.net.ssrf.Guard`; inference: `loom_inference.pull_guard`; gateway:
`loom_gateway.domain.endpoint_urls`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

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
                      ("is_private", "a private address"), ("is_reserved", "a reserved address"),
                      # IPv6 only; Python counts fec0::/10 as neither private nor reserved.
                      ("is_site_local", "a site-local address")):
        if getattr(ip, attr, False):
            return why
    if not ip.is_global:
        return "not a public address"
    return None


class Unresolvable(Exception):
    """A host that resolves to nothing, not in time, or not at all; the message says which."""


async def resolve(host: str, port: int, *, timeout_s: float) -> list[IP]:
    """Every address `host` stands for: an IP literal is itself; a name is resolved with a
    timeout. getaddrinfo also turns odd spellings (2130706433, 0x7f.1) into addresses, so a
    caller that vets every one of them vets what a connection would reach."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout_s)
    except (OSError, TimeoutError) as exc:
        raise Unresolvable(f"cannot resolve {host!r}: {exc}") from exc
    found = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not found:
        raise Unresolvable(f"{host!r} resolves to no address")
    return found
