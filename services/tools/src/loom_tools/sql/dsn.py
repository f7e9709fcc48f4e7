"""Where a PostgreSQL connection of the SQL tool goes: one TCP host, vetted like a URL.

A tenant's DSN names the database the tool connects to, so it gets the SSRF rules of
`net/targets.py`: the host must resolve to public addresses only, unless the operator lists it
in `LOOM_TOOLS_ALLOW_PRIVATE_TARGETS` (the platform's own Postgres on 127.0.0.1 was reachable
before). Refused outright: Unix sockets (a host that is a path, or no host at all), several
hosts, and query parameters other than `sslmode` and `connect_timeout` (others read local files
or override the host). The connection then goes to the vetted address, never resolving again,
and takes no password from the service's environment or `~/.pgpass`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from loom_tools.errors import InvalidArguments
from loom_tools.net.targets import PrivateTargets, vet_host

_PARAMS = {"sslmode", "connect_timeout"}


@dataclass(frozen=True)
class Endpoint:
    host: str            # as written in the DSN
    port: int
    password: str        # "" when the DSN has none: never looked up elsewhere


def endpoint(dsn: str) -> Endpoint:
    """The DSN's one TCP endpoint, or InvalidArguments naming what is refused."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise InvalidArguments("argument 'dsn': a postgresql:// URL is required", field="dsn")
    for key, _ in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _PARAMS:
            raise InvalidArguments(f"argument 'dsn': parameter {key!r} is not allowed (only "
                                   f"{', '.join(sorted(_PARAMS))})", field="dsn")
    hostspec = parts.netloc.rpartition("@")[2]
    if "," in hostspec:
        raise InvalidArguments("argument 'dsn': one host per connection", field="dsn")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise InvalidArguments(f"argument 'dsn': {exc}", field="dsn") from exc
    host = unquote(host or "")
    if not host or host.startswith("/"):
        raise InvalidArguments("argument 'dsn': a TCP host is required (no Unix sockets)", field="dsn")
    return Endpoint(host, port or 5432, unquote(parts.password or ""))


async def vet(dsn: str, allowed: PrivateTargets, timeout_s: float = 5.0) -> tuple[Endpoint, str]:
    """The endpoint and the vetted address to connect to, or SsrfBlocked / InvalidArguments."""
    ep = endpoint(dsn)
    ip = await vet_host(ep.host, ep.port, allowed, timeout_s=timeout_s, field="dsn")
    return ep, str(ip)
