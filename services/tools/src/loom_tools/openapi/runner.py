"""Run an imported OpenAPI operation through the guarded HTTP client."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from loom_tools.domain.types import ToolSpec
from loom_tools.net.client import GuardedClient
from loom_tools.net.tools import auth_headers, result_of


class OpenApiRunner:
    def __init__(self, client: GuardedClient) -> None:
        self._client = client

    async def run(self, spec: ToolSpec, args: dict[str, Any], timeout_s: float) -> Any:
        cfg = spec.config
        path = cfg["path"]
        query: dict[str, Any] = {}
        headers: dict[str, str] = {}
        for p in cfg["params"]:
            if p["name"] not in args:
                continue
            value = args[p["name"]]
            if p["in"] == "path":
                # quote(safe="") keeps a value like "../admin" inside its path segment.
                path = path.replace("{" + p["name"] + "}", quote(str(value), safe=""))
            elif p["in"] == "query":
                query[p["name"]] = str(value).lower() if isinstance(value, bool) else value
            else:
                headers[p["name"]] = str(value)
        url = cfg["base_url"].rstrip("/") + path
        resp = await self._client.request(
            cfg["method"], url, headers={**headers, **auth_headers(spec.credentials)}, params=query or None,
            json=args.get("body") if cfg.get("body") else None, timeout_s=timeout_s)
        return result_of(resp, raise_for_status=True)
