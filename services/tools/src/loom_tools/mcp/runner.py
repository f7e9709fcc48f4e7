"""The `mcp` tool kind: a call opens a session to the server's URL and calls its tool.

Config (set by `Catalog.add_mcp_server`): `url`, `tool` (the server's name for it), `headers`
(fixed, not secret). Credentials become one header (`auth_headers`, as for HTTP tools).
"""

from __future__ import annotations

from typing import Any

from loom_tools.domain.types import ToolSpec
from loom_tools.mcp.session import McpSessions
from loom_tools.net.tools import auth_headers


def headers_of(spec_config: dict[str, Any], credentials: dict[str, Any] | None) -> dict[str, str]:
    return {**spec_config.get("headers", {}), **auth_headers(credentials)}


class McpRunner:
    def __init__(self, sessions: McpSessions) -> None:
        self._sessions = sessions

    async def run(self, spec: ToolSpec, args: dict[str, Any], timeout_s: float) -> Any:
        return await self._sessions.call_tool(spec.config["url"], headers_of(spec.config, spec.credentials),
                                              spec.config["tool"], args, timeout_s)
