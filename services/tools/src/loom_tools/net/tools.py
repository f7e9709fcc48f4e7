"""The HTTP tool kinds: the built-in `http.request` and registered `http` tools.

A registered `http` tool fixes method and URL in its config; its arguments go in the query
string (GET/DELETE) or as a JSON body. Credentials add an API-key header or a bearer token.
"""

from __future__ import annotations

from typing import Any

from loom_tools.domain.types import ToolSpec
from loom_tools.errors import UpstreamError
from loom_tools.net.client import GuardedClient, Response

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]

REQUEST_SPEC = ToolSpec(
    "http.request", "Send an HTTP request to a public URL and return status, headers and body.", "http",
    {"type": "object", "properties": {
        "url": {"type": "string", "maxLength": 4096},
        "method": {"enum": METHODS},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "params": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
        "json": {},
        "body": {"type": "string"},
    }, "required": ["url"], "additionalProperties": False},
    {"builtin": True})

AUTH_SCHEMA = {"type": "object", "oneOf": [
    {"properties": {"type": {"const": "api_key"}, "header": {"type": "string"}, "value": {"type": "string"}},
     "required": ["type", "header", "value"]},
    {"properties": {"type": {"const": "bearer"}, "token": {"type": "string"}}, "required": ["type", "token"]},
]}


def auth_headers(credentials: dict[str, Any] | None) -> dict[str, str]:
    if not credentials:
        return {}
    if credentials.get("type") == "api_key":
        return {credentials["header"]: credentials["value"]}
    if credentials.get("type") == "bearer":
        return {"Authorization": f"Bearer {credentials['token']}"}
    return {}


def result_of(resp: Response, *, raise_for_status: bool) -> dict[str, Any]:
    if raise_for_status and resp.status >= 400:
        body = resp.body[:500].decode("utf-8", errors="replace")
        raise UpstreamError(f"upstream answered HTTP {resp.status}: {body}")
    keep = ("content-type", "location", "content-length")
    return {"status": resp.status, "headers": {k: v for k, v in resp.headers.items() if k.lower() in keep},
            "body": resp.payload()}


class HttpRunner:
    def __init__(self, client: GuardedClient) -> None:
        self._client = client

    async def run(self, spec: ToolSpec, args: dict[str, Any], timeout_s: float) -> Any:
        if spec.config.get("builtin"):
            body = args.get("body")
            resp = await self._client.request(
                args.get("method", "GET"), args["url"], headers=args.get("headers"), params=args.get("params"),
                json=args.get("json"), content=body.encode() if body is not None else None, timeout_s=timeout_s)
            return result_of(resp, raise_for_status=False)
        method = spec.config.get("method", "GET").upper()
        query = method in ("GET", "DELETE", "HEAD")
        resp = await self._client.request(
            method, spec.config["url"], headers={**spec.config.get("headers", {}), **auth_headers(spec.credentials)},
            params=args if query else None, json=None if query else args, timeout_s=timeout_s)
        return result_of(resp, raise_for_status=True)
