"""The operator's allow-list of private targets, and the one vetting of a host every tool uses.

Tools reach only public addresses (`loom_common.ssrf.refusal`), unless the operator names a
loopback or private target in `LOOM_TOOLS_ALLOW_PRIVATE_TARGETS` (comma-separated), for
instance an internal API or the database of a sample application:

    host            a name or IP literal as written in the URL/DSN, any port   internal-api.corp
    host:port       the same, that port only                                   db.corp:5432, [fd00::5]:80
    CIDR            every address in the network, any port                      10.20.0.0/16, 127.0.0.1/32

A bare IP literal is its own /32 (/128). A name is matched as written (its addresses are then
not vetted: the operator vouched for it); an address or network is matched against what the
host resolves to, so `2130706433` and `127.0.0.1` are the same target. Cloud metadata addresses
stay refused unless an entry names that exact address. HTTP/OpenAPI tools and SQL connections
read this one setting (`LOOM_TOOLS_HTTP_ALLOWLIST`, its older name, is read too).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from loom_common import ssrf
from loom_common.ssrf import IP, METADATA, refusal
from loom_tools.errors import SsrfBlocked

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split_port(entry: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]`, `[v6]:port` -> (host, port); a bare IPv6 literal has no port."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, int(port)
    return entry, None


@dataclass(frozen=True)
class PrivateTargets:
    names: frozenset[tuple[str, int | None]] = frozenset()       # (host as written, port or any)
    networks: tuple[tuple[Network, int | None], ...] = field(default=())

    @classmethod
    def parse(cls, *texts: str) -> PrivateTargets:
        names: set[tuple[str, int | None]] = set()
        networks: list[tuple[Network, int | None]] = []
        for text in texts:
            for raw in (e.strip().lower() for e in (text or "").split(",")):
                if not raw:
                    continue
                try:
                    if "/" in raw:
                        networks.append((ipaddress.ip_network(raw, strict=False), None))
                        continue
                    host, port = _split_port(raw)
                except ValueError as exc:
                    raise ValueError(f"LOOM_TOOLS_ALLOW_PRIVATE_TARGETS: bad entry {raw!r}: {exc}") from exc
                try:
                    networks.append((ipaddress.ip_network(host), port))
                except ValueError:
                    names.add((host.rstrip("."), port))
        return cls(frozenset(names), tuple(networks))

    def names_host(self, host: str, port: int) -> bool:
        host = host.lower().rstrip(".")
        return (host, None) in self.names or (host, port) in self.names

    def covers(self, ip: IP, port: int) -> bool:
        for net, only_port in self.networks:
            if only_port not in (None, port) or ip not in net:
                continue
            if ip in METADATA and net.num_addresses != 1:  # metadata only when named exactly
                continue
            return True
        return False


async def resolve(host: str, port: int, *, timeout_s: float, field: str) -> list[IP]:
    """Every address `host` stands for (`loom_common.ssrf.resolve`), or SsrfBlocked naming `field`."""
    try:
        return await ssrf.resolve(host, port, timeout_s=timeout_s)
    except ssrf.Unresolvable as exc:
        raise SsrfBlocked(str(exc), field=field) from exc


async def vet_host(host: str, port: int, allowed: PrivateTargets, *, timeout_s: float, field: str) -> IP:
    """The address to connect to for host:port, or SsrfBlocked: every address the host resolves to
    must be public or on the operator's list. The caller connects to the returned address itself,
    never resolving the name again (no DNS rebinding between check and use)."""
    addresses = await resolve(host, port, timeout_s=timeout_s, field=field)
    if not allowed.names_host(host, port):
        for ip in addresses:
            why = refusal(ip)
            if why and not allowed.covers(ip, port):
                raise SsrfBlocked(f"{host} resolves to {ip}, {why} (an operator may allow it in "
                                  "LOOM_TOOLS_ALLOW_PRIVATE_TARGETS)", field=field)
    return addresses[0]
