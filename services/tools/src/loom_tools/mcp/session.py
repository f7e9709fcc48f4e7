"""One short MCP session over streamable HTTP (the official `mcp` SDK client), to list a
server's tools or call one.

A session is opened per call and closed after it: no connection outlives a call, so every
call is vetted again (an operator who removes a private target closes it at once). The URL is
vetted once up front, so an address the guard refuses is a typed `ssrf_blocked` before any
connection; the transport then vets every request it sends. Whatever the SDK raises (often
wrapped in an anyio exception group) becomes a typed `ToolError`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from loom_tools.errors import ToolError, ToolTimeout, UpstreamError
from loom_tools.mcp.transport import GuardedTransport
from loom_tools.net.ssrf import Guard

T = TypeVar("T")
MAX_TOOLS = 200                 # a server listing more is refused, not truncated silently
MAX_DESCRIPTION = 2000
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class RemoteTool:
    name: str                   # as the server names it (what tools/call takes)
    description: str
    input_schema: dict[str, Any]


def local_name(remote: str) -> str:
    """A server's tool name made safe for our registry and LLM function calling."""
    return _UNSAFE.sub("_", remote)[:100] or "tool"


class McpSessions:
    """Opens guarded sessions to MCP servers: `list_tools` and `call_tool`."""

    def __init__(self, guard: Guard, *, max_bytes: int, timeout_s: float) -> None:
        self._guard = guard
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s

    async def list_tools(self, url: str, headers: dict[str, str], timeout_s: float | None = None) -> list[RemoteTool]:
        async def work(client: Client) -> list[RemoteTool]:
            listed = await client.list_tools()
            if len(listed.tools) > MAX_TOOLS:
                raise UpstreamError(f"the MCP server lists {len(listed.tools)} tools; at most {MAX_TOOLS}",
                                    field="url")
            return [RemoteTool(t.name, (t.description or "")[:MAX_DESCRIPTION], dict(t.input_schema or {}))
                    for t in listed.tools]
        return await self._session(url, headers, timeout_s or self._timeout_s, work)

    async def call_tool(self, url: str, headers: dict[str, str], tool: str, arguments: dict[str, Any],
                        timeout_s: float) -> Any:
        async def work(client: Client) -> Any:
            return result_of(await client.call_tool(tool, arguments))
        return await self._session(url, headers, min(timeout_s, self._timeout_s), work)

    async def _session(self, url: str, headers: dict[str, str], timeout_s: float,
                       work: Callable[[Client], Awaitable[T]]) -> T:
        await self._guard.vet(url)  # refused here, before any connection
        transport = GuardedTransport(self._guard, max_bytes=self._max_bytes)
        try:
            async with asyncio.timeout(timeout_s):
                async with httpx2.AsyncClient(transport=transport, headers=headers, trust_env=False,
                                              timeout=httpx2.Timeout(timeout_s)) as http, \
                        Client(streamable_http_client(url, http_client=http), read_timeout_seconds=timeout_s) as client:
                    return await work(client)
        except TimeoutError as exc:
            raise ToolTimeout(f"the MCP server did not answer within {timeout_s:g}s") from exc
        except BaseException as exc:  # translated below; cancellation is re-raised as it came
            raise _translate(exc) from None


def _translate(exc: BaseException) -> BaseException:
    """The typed error inside what the SDK raised (exception groups unwrapped), else upstream_error."""
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
        return exc
    found = _find(exc, ToolError)
    if found is not None:
        return found
    if _find(exc, TimeoutError) is not None or _find(exc, httpx2.TimeoutException) is not None:
        return ToolTimeout("the MCP server timed out")
    leaf = _leaf(exc)
    return UpstreamError(f"MCP server: {type(leaf).__name__}: {str(leaf)[:300]}")


def _find(exc: BaseException, kind: type) -> Any:
    if isinstance(exc, kind):
        return exc
    for inner in getattr(exc, "exceptions", ()) or ():
        hit = _find(inner, kind)
        if hit is not None:
            return hit
    cause = exc.__cause__ or exc.__context__
    return _find(cause, kind) if cause is not None and cause is not exc else None


def _leaf(exc: BaseException) -> BaseException:
    while getattr(exc, "exceptions", None):
        exc = exc.exceptions[0]
    return exc


def result_of(res: Any) -> Any:
    """A CallToolResult as a tool result: its structured content when it has some, else its
    text (several blocks joined); a result flagged `isError` is the tool's refusal."""
    texts = [b.text for b in res.content if getattr(b, "type", "") == "text"]
    if res.is_error:
        raise UpstreamError(("the MCP tool failed: " + " ".join(texts))[:1000])
    if res.structured_content is not None:
        return res.structured_content
    others = [{"type": b.type, "mime_type": getattr(b, "mime_type", None)} for b in res.content
              if getattr(b, "type", "") != "text"]
    if not others:
        return "\n".join(texts)
    return {"text": "\n".join(texts), "other_content": others}  # images etc.: named, not inlined
