"""The HTTP client of `/api/pull`: every connection vetted by the shared SSRF rule.

The vetting sits in the connection itself (an httpcore network backend): the name is resolved
here, every address it resolves to must pass `loom_common.ssrf.refusal`, and the socket is
opened to the vetted address, never resolving again. So a redirect to an internal address,
and a name re-pointed between a check and the connection (DNS rebinding), are refused the
same way. TLS keeps the original name for SNI and the certificate check (httpcore takes it
from the request URL, not from the address connected to). Environment proxies are ignored:
a proxy would resolve the name itself.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpcore
import httpx

from loom_common.ssrf import Unresolvable, refusal, resolve
from loom_inference.engine.types import InvalidRequest
from loom_inference.pull_policy import PullPolicy


class PullRefused(InvalidRequest):
    """A pull that would reach an address the SSRF rule refuses."""


async def vetted_address(host: str, port: int, policy: PullPolicy, timeout_s: float = 10.0) -> str | None:
    """The address to connect to (None: an allowed host, connect as usual); PullRefused otherwise."""
    if policy.allows(host, port):
        return None
    bare = host.strip("[]").rstrip(".")
    try:
        found = await resolve(bare, port, timeout_s=timeout_s)
    except Unresolvable as exc:
        raise PullRefused(str(exc), "model") from None
    for ip in found:
        why = refusal(ip)
        if why:
            raise PullRefused(f"pulling from {bare} is refused: it resolves to {ip}, {why} "
                              "(an operator can allow it with LOOM_INFERENCE_PULL_ALLOW_HOSTS)", "model")
    return str(found[0])


async def vet_url(url: str, policy: PullPolicy) -> None:
    """Up-front check of a URL, so a refused pull is a 400 before any progress is streamed."""
    if not policy.guard_urls:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PullRefused(f"only http(s) URLs can be pulled, not {url!r}", "model")
    await vetted_address(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), policy)


class _VettingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: PullPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        address = await vetted_address(host, port, self._policy)
        return await self._inner.connect_tcp(address or host, port, timeout=timeout, local_address=local_address,
                                             socket_options=socket_options)

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise PullRefused("unix sockets are not a pull source", "model")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def client(policy: PullPolicy, timeout_s: float) -> httpx.AsyncClient:
    """An httpx client following redirects; with `policy.guard_urls`, every connection vetted."""
    if not policy.guard_urls:
        return httpx.AsyncClient(timeout=timeout_s, follow_redirects=True)
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx builds its httpcore pool without a way to pass a network backend: swap the pool for
    # one with the same TLS context and the vetting backend (test_inference_pull_security
    # fails loudly should a new httpx stop routing connections through it). Private, on purpose.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=transport._pool._ssl_context, network_backend=_VettingBackend(policy))
    return httpx.AsyncClient(transport=transport, timeout=timeout_s, follow_redirects=True, trust_env=False)
