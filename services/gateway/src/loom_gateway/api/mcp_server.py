"""Every published app as an MCP server: `/v1/mcp`, streamable HTTP (the `mcp` SDK's server
side), authenticated by the app's API key as a Bearer token, like the rest of the service API.

The key names the app, so the endpoint is per app: `tools/list` answers one tool, the app
(domain/app_tool.py makes its schema from the start inputs; a chat app takes `query`), and
`tools/call` runs it through the service API's own run path (`service_runs._start`: limits,
token quotas, annotation replies, the run recorded like any other) and answers with the
blocking result. A wrong or missing key is a 401 before the MCP layer sees the request.

The session manager is stateless (every POST stands alone, JSON responses): any replica can
answer any request, and nothing is kept per client.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.responses import JSONResponse

from loom_common.logging import get_logger
from loom_common.runtime import ServiceRuntime
from loom_gateway.api import deps, service_runs
from loom_gateway.domain import app_tool, security
from loom_gateway.domain.errors import ApiError, Forbidden, Unauthorized
from loom_gateway.domain.rbac import Perm, Principal, allowed

log = get_logger(__name__)

PATH = "/v1/mcp"
USER = "mcp-client"           # the end user the runs are recorded for (Dify's `user`)
_PRINCIPAL = "loom_principal"  # where the admitted key travels to the handlers (request state)


def _request_of(ctx: Any) -> Request:
    request = getattr(ctx, "request", None)
    if not isinstance(request, Request) or _PRINCIPAL not in request.scope.get("state", {}):
        raise RuntimeError("MCP handler without an authenticated HTTP request")
    return request


async def _published(request: Request):
    p: Principal = request.scope["state"][_PRINCIPAL]
    g = deps.gw(request)
    return p, await g.apps.published(p.tenant_id, p.app_id, p.app_version)


async def _list_tools(ctx, params) -> types.ListToolsResult:
    _, app = await _published(_request_of(ctx))
    return types.ListToolsResult(tools=[types.Tool(name=app_tool.tool_name(app), description=app_tool.description(app),
                                                   input_schema=app_tool.input_schema(app))])


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


async def _call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    request = _request_of(ctx)
    try:
        p, app = await _published(request)
        if params.name != app_tool.tool_name(app):
            return _error(f"unknown tool {params.name!r}: this server has {app_tool.tool_name(app)!r}")
        query, inputs = app_tool.split_arguments(app, dict(params.arguments or {}))
        kind = app_tool.run_kind(app)
        run = await service_runs._start(request, p, kind, user=USER, inputs=inputs, query=query,
                                        files=None, response_mode="blocking")
        body = await service_runs._blocking(deps.gw(request), run)
    except ApiError as exc:  # the service API's refusal (bad input, quota, failed run): the tool's
        return _error(f"{exc.code}: {exc.message}" + (f" (field: {exc.field})" if exc.field else ""))
    text, structured, is_error = app_tool.result_of(app, body)
    if is_error:
        return _error(text)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=structured)


class AppMcpEndpoint:
    """The ASGI endpoint at PATH: authenticates the key, then hands the request to the SDK."""

    def __init__(self, max_body_bytes: int) -> None:
        self.server = Server("loom-app", on_list_tools=_list_tools, on_call_tool=_call_tool)
        self.manager = StreamableHTTPSessionManager(self.server, json_response=True, stateless=True,
                                                    max_request_body_size=max_body_bytes)
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        # The manager's task group lives in a task of its own: anyio scopes must end in the task
        # that opened them, and the runtime's start and stop hooks run in different tasks.
        ready = asyncio.Event()

        async def hold() -> None:
            async with self.manager.run():
                ready.set()
                await self._stop.wait()
        self._task = asyncio.create_task(hold())
        await ready.wait()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._task, 5)

    async def __call__(self, scope, receive, send) -> None:
        request = Request(scope, receive)
        try:
            principal = await self._admit(request)
        except ApiError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            await JSONResponse(exc.body(), status_code=exc.status, headers=headers)(scope, receive, send)
            return
        scope.setdefault("state", {})[_PRINCIPAL] = principal
        await self.manager.handle_request(scope, receive, send)

    @staticmethod
    async def _admit(request: Request) -> Principal:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not token:
            raise Unauthorized("Authorization header must be provided and start with 'Bearer'")
        if not token.startswith(security.APP_KEY_PREFIX):
            raise Unauthorized("an app API key (app-…) is required")
        principal = await deps.resolve(request, token)  # admission: key, rate limits, key-use audit
        if not allowed(principal.role, Perm.APP_RUN):
            raise Forbidden("this key cannot run the app")
        return principal


def install(rt: ServiceRuntime, max_body_bytes: int) -> AppMcpEndpoint:
    """Route PATH (GET, POST, DELETE) to the endpoint, and run its session manager with the service."""
    endpoint = AppMcpEndpoint(max_body_bytes)
    rt.http.add_route(PATH, endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False)

    async def start(rt: ServiceRuntime) -> None:
        await endpoint.start()

    async def stop(rt: ServiceRuntime) -> None:
        await endpoint.stop()
    rt.on_start(start)
    rt.on_stop(stop)
    return endpoint
