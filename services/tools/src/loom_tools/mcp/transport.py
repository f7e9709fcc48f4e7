"""The MCP client's HTTP transport: every request vetted by the SSRF guard, pinned to its address.

The `mcp` SDK talks over an `httpx2` client; this transport is the one it gets. Each request's
URL is vetted by the same `Guard` HTTP tools use (scheme, resolved addresses, the operator's
private targets), then sent to the vetted IP literal while `Host` and TLS SNI keep the name, so a
DNS answer cannot change between the check and the connection. Response bodies (JSON or an SSE
stream) are counted as they arrive and cut at `max_bytes`. Proxies from the environment are
ignored: a proxy would resolve the name again.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator

import certifi
import httpx2

from loom_tools.errors import ResponseTooLarge, UpstreamError
from loom_tools.net.ssrf import Guard

# httpx2 logs every request URL at INFO (a query string may carry a secret): not in our log.
for _name in ("httpx2", "httpcore2", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

_SSL = None
_REFUSALS = {401: "check the credentials", 403: "check the credentials", 404: "no MCP endpoint at this URL"}


def _ssl_context() -> ssl.SSLContext:
    global _SSL  # the CA bundle loads once (tens of ms), not per call
    if _SSL is None:
        _SSL = ssl.create_default_context(cafile=certifi.where())
    return _SSL


class _Capped(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, max_bytes: int) -> None:
        self._inner = inner
        self._left = max_bytes
        self._max = max_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._left -= len(chunk)
            if self._left < 0:
                raise ResponseTooLarge(f"MCP server sent more than {self._max} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class GuardedTransport(httpx2.AsyncBaseTransport):
    def __init__(self, guard: Guard, *, max_bytes: int) -> None:
        self._guard = guard
        self._max_bytes = max_bytes
        self._inner = httpx2.AsyncHTTPTransport(verify=_ssl_context(), trust_env=False)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        target = await self._guard.vet(str(request.url))
        # `Host` was set from the URL as written when the request was built: it stays.
        request.url = request.url.copy_with(host=target.ip, port=target.port)
        if target.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": target.host}
        response = await self._inner.handle_async_request(request)
        if request.method == "POST" and response.status_code in _REFUSALS:
            # The SDK reports these as a bare "error response": say what the server said.
            await response.aclose()
            raise UpstreamError(f"the MCP server answered HTTP {response.status_code} "
                                f"({_REFUSALS[response.status_code]})", field="url")
        response.stream = _Capped(response.stream, self._max_bytes)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
