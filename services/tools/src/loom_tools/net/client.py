"""A guarded HTTP client: every hop vetted, connection pinned to the vetted address.

Redirects are followed here, one hop at a time, each re-vetted by the guard; a hop to another
origin keeps only a few harmless headers (a credential may sit in a header of any name). The request
goes to the vetted IP literal while the `Host` header and TLS SNI/certificate checks keep
the original name. Proxies from the environment are ignored (`trust_env=False`): a proxy
would resolve the name again. Bodies are streamed and cut at `max_bytes`.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import certifi
import httpx

from loom_tools.errors import ResponseTooLarge, ToolTimeout, UpstreamError
from loom_tools.net.ssrf import Guard, Target

# httpx logs every URL (query strings included) at INFO and httpcore every header at DEBUG:
# either may carry a tenant's secret, so neither reaches the service log.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

REDIRECTS = {301, 302, 303, 307, 308}
# The only request headers that follow a redirect to another origin (scheme, host or port
# differ). Any other may carry a credential: a tool's API key travels in a header of any name
# (`X-Api-Key`, `X-Auth-Token`, ...), so naming the sensitive ones would miss some.
_CROSS_ORIGIN_SAFE = {"accept", "accept-language", "content-type", "user-agent"}


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str

    def payload(self) -> Any:
        """JSON when it parses, else text: what a tool hands back to an LLM."""
        import json

        try:
            return json.loads(self.body)
        except ValueError:
            return self.body.decode("utf-8", errors="replace")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def _pinned_url(url: str, target: Target) -> str:
    parts = urlsplit(url)
    host = f"[{target.ip}]" if ":" in target.ip else target.ip
    return urlunsplit((parts.scheme, f"{host}:{target.port}", parts.path or "/", parts.query, ""))


class GuardedClient:
    def __init__(self, guard: Guard, *, timeout_s: float = 15.0, max_bytes: int = 2 * 1024 * 1024,
                 max_redirects: int = 5) -> None:
        self.guard = guard
        # Building an SSL context loads the CA bundle (tens of ms): once, not per call. A
        # client per call stays, so no connection is ever reused across vetted targets.
        self._ssl = ssl.create_default_context(cafile=certifi.where())
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects

    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                      params: dict[str, Any] | None = None, json: Any = None, content: bytes | None = None,
                      timeout_s: float | None = None) -> Response:
        headers = dict(headers or {})
        timeout = httpx.Timeout(min(timeout_s or self.timeout_s, self.timeout_s))
        if params:
            url = str(httpx.URL(url, params={k: v for k, v in params.items() if v is not None}))
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=timeout,
                                     verify=self._ssl) as client:
            for _ in range(self.max_redirects + 1):
                target = await self.guard.vet(url)
                default_port = 443 if target.scheme == "https" else 80
                host_header = target.host if ":" not in target.host else f"[{target.host}]"
                if target.port != default_port:
                    host_header += f":{target.port}"
                req = client.build_request(
                    method, _pinned_url(url, target),
                    headers={"Accept-Encoding": "gzip, deflate", **headers, "Host": host_header},
                    json=json, content=content,
                    extensions={"sni_hostname": target.host} if target.scheme == "https" else {})
                resp = await self._send(client, req)
                location = resp.headers.get("location")
                if resp.status not in REDIRECTS or not location:
                    return Response(resp.status, resp.headers, resp.body, url)
                nxt = urljoin(url, location)
                if _origin(nxt) != _origin(url):
                    headers = {k: v for k, v in headers.items() if k.lower() in _CROSS_ORIGIN_SAFE}
                if resp.status == 303 or (resp.status in (301, 302) and method.upper() == "POST"):
                    method, json, content = "GET", None, None
                url = nxt
        raise UpstreamError(f"more than {self.max_redirects} redirects", field="url")

    async def _send(self, client: httpx.AsyncClient, req: httpx.Request) -> Response:
        try:
            resp = await client.send(req, stream=True)
            try:
                body = bytearray()
                async for chunk in resp.aiter_raw():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise ResponseTooLarge(f"response larger than {self.max_bytes} bytes")
                body = bytearray(_decode(resp, bytes(body), self.max_bytes))
            finally:
                await resp.aclose()
        except httpx.TimeoutException as exc:
            raise ToolTimeout(f"HTTP request timed out: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"HTTP request failed: {type(exc).__name__}: {exc}") from exc
        return Response(resp.status_code, dict(resp.headers), bytes(body), str(req.url))


def _decode(resp: httpx.Response, raw: bytes, max_bytes: int) -> bytes:
    """Decompress with a cap, so a small gzip bomb cannot expand past the size limit."""
    import zlib

    enc = resp.headers.get("content-encoding", "").lower()
    if enc in ("gzip", "deflate"):
        d = zlib.decompressobj(zlib.MAX_WBITS | 32)
        out = d.decompress(raw, max_bytes + 1)
        if len(out) > max_bytes or d.unconsumed_tail:
            raise ResponseTooLarge(f"decompressed response larger than {max_bytes} bytes")
        return out
    if enc in ("", "identity"):
        return raw
    raise UpstreamError(f"unsupported content-encoding {enc!r}")
