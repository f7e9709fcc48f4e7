"""Console: a workspace's tools (the tools service's registry, through tools.v1): list, get,
register an HTTP tool, import an OpenAPI spec, add a SQL connection or an MCP server, test one
call, delete. Editors and up write; every member who sees apps may list.

A tool's `id` is its name in the workspace (`weather.forecast`, `calc.add`): what tool and
agent nodes name in `tool_name`. Credentials (`credentials`, a SQL `dsn`) are write-only:
sealed by the tools service, never returned (`has_credentials` says that some are set), never
in the audit entry (which records the route, not the body)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import AfterValidator, BaseModel, Field

from loom_gateway.api.deps import gw, require
from loom_gateway.clients.tools import ToolsClient
from loom_gateway.domain.errors import NotFound, Upstream
from loom_gateway.domain.rbac import Perm, Principal

router = APIRouter(prefix="/console/api/workspaces/{workspace_id}", tags=["console: tools"])

# What the tools service behind these routes may answer besides (openapi.py documents the rest).
_UPSTREAM: dict[int | str, dict] = {
    502: {"description": "The tools service failed"}, 503: {"description": "The tools service is unavailable"},
    504: {"description": "The tools service (or the MCP server it lists) did not answer in time"}}
_WRITE = {**_UPSTREAM, 409: {"description": "A tool of that name exists (`replace: true` overwrites)"}}

ToolId = Annotated[str, Field(min_length=1, max_length=130, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.*-]*$")]
Name = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# Headers that carry a credential go in `credentials` (sealed), never in plain `headers`.
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key"}


class BearerToken(BaseModel):
    type: Literal["bearer"]
    token: str = Field(min_length=1, max_length=4096)


class ApiKeyHeader(BaseModel):
    type: Literal["api_key"]
    header: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9-]+$")
    value: str = Field(min_length=1, max_length=4096)


Credentials = Annotated[BearerToken | ApiKeyHeader, Field(discriminator="type",
                        description="write-only: sealed at rest, never returned")]


def _plain_headers(headers: dict[str, str]) -> dict[str, str]:
    if len(headers) > 20:
        raise ValueError("at most 20 headers")
    for k, v in headers.items():
        if not k or len(k) > 100 or len(v) > 1000 or not k.replace("-", "").isalnum():
            raise ValueError(f"header {k[:100]!r}: a token name of at most 100 characters, a value of at most 1000")
        if k.lower() in _SECRET_HEADERS:
            raise ValueError(f"header {k!r} carries a credential: send it in `credentials` (sealed, never returned)")
    return headers


PlainHeaders = Annotated[dict[str, str], AfterValidator(_plain_headers),
                         Field(description="fixed headers that are not secret (a credential goes in `credentials`)")]


class HttpToolBody(BaseModel):
    name: str = Name
    description: str = Field("", max_length=2000)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str = Field(min_length=1, max_length=4096)
    parameters: dict[str, Any] | None = Field(None, description="JSON schema of the arguments object")
    headers: PlainHeaders = {}
    credentials: Credentials | None = None
    replace: bool = False


class OpenApiBody(BaseModel):
    prefix: str = Name
    spec: str = Field(min_length=1, max_length=2_000_000, description="the OpenAPI 3 document, JSON or YAML")
    base_url: str = Field("", max_length=4096)
    credentials: Credentials | None = None
    replace: bool = False


class SqlConnectionBody(BaseModel):
    name: str = Name
    driver: Literal["postgresql", "sqlite"]
    dsn: str = Field("", max_length=4096, description="postgresql:// URL; write-only (sealed, never returned)")
    path: str = Field("", max_length=4096, description="SQLite file under LOOM_TOOLS_SQLITE_ROOTS")
    description: str = Field("", max_length=2000)
    replace: bool = False


class McpServerBody(BaseModel):
    name: str = Name
    url: str = Field(min_length=1, max_length=4096, description="the server's streamable HTTP endpoint")
    headers: PlainHeaders = {}
    credentials: Credentials | None = None
    description: str = Field("", max_length=2000)
    replace: bool = Field(False, description="re-list the server's tools, dropping those it no longer offers")


class ToolTestBody(BaseModel):
    arguments: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float = Field(30.0, gt=0, le=120)


def _tools(request: Request) -> ToolsClient:
    tools = gw(request).tools
    if tools is None:
        raise Upstream("the tools service is not configured")
    return tools


def _creds(c: BearerToken | ApiKeyHeader | None) -> dict | None:
    return c.model_dump() if c is not None else None


@router.get("/tools", name="tools.list", responses=_UPSTREAM)
async def list_tools(request: Request, p: Principal = require(Perm.APPS_READ),
                     kind: Literal["builtin", "http", "openapi", "sql", "code", "mcp"] | None = Query(None)) -> dict:
    """The workspace's tools and the built-ins: {data: [{id, name, kind, description, provider,
    parameters, has_credentials}]}."""
    return {"data": await _tools(request).list(p.tenant_id, kind or "")}


@router.get("/tools/{tool_id}", name="tools.get", responses=_UPSTREAM)
async def get_tool(tool_id: ToolId, request: Request, p: Principal = require(Perm.APPS_READ)) -> dict:
    for tool in await _tools(request).list(p.tenant_id):
        if tool["id"] == tool_id:
            return tool
    raise NotFound(f"no tool {tool_id!r} in this workspace", code="tool_not_found")


@router.post("/tools/http", status_code=201, name="tools.create_http", responses=_WRITE)
async def create_http_tool(body: HttpToolBody, request: Request, p: Principal = require(Perm.APPS_WRITE)) -> dict:
    """A plain HTTP tool: fixed method and URL; arguments go to the query or a JSON body."""
    return {"data": await _tools(request).register_http(
        p.tenant_id, name=body.name, description=body.description, method=body.method, url=body.url,
        parameters=body.parameters, headers=body.headers, credentials=_creds(body.credentials),
        replace=body.replace)}


@router.post("/tools/openapi", status_code=201, name="tools.import_openapi", responses=_WRITE)
async def import_openapi(body: OpenApiBody, request: Request, p: Principal = require(Perm.APPS_WRITE)) -> dict:
    """One tool per operation, named `<prefix>.<operationId>`."""
    return {"data": await _tools(request).import_openapi(
        p.tenant_id, prefix=body.prefix, spec=body.spec, base_url=body.base_url,
        credentials=_creds(body.credentials), replace=body.replace)}


@router.post("/tools/sql", status_code=201, name="tools.create_sql", responses=_WRITE)
async def create_sql_connection(body: SqlConnectionBody, request: Request,
                                p: Principal = require(Perm.APPS_WRITE)) -> dict:
    """Tools `<name>.query` (one read-only SELECT) and `<name>.schema`."""
    return {"data": await _tools(request).add_connection(
        p.tenant_id, name=body.name, driver=body.driver, dsn=body.dsn, path=body.path,
        description=body.description, replace=body.replace)}


@router.post("/tools/mcp", status_code=201, name="tools.create_mcp", responses=_WRITE)
async def create_mcp_server(body: McpServerBody, request: Request, p: Principal = require(Perm.APPS_WRITE)) -> dict:
    """An MCP server (streamable HTTP): its tools are listed now and registered as `<name>.<tool>`."""
    return {"data": await _tools(request).add_mcp_server(
        p.tenant_id, name=body.name, url=body.url, headers=body.headers, credentials=_creds(body.credentials),
        description=body.description, replace=body.replace)}


@router.post("/tools/{tool_id}/test", name="tools.test", responses=_UPSTREAM)
async def test_tool(tool_id: ToolId, body: ToolTestBody, request: Request,
                    p: Principal = require(Perm.APPS_WRITE)) -> dict:
    """Call the tool once with `arguments`, as a node would (audited by the tools service):
    {ok, result, error_code, error_message, error_field, duration_ms}; a refusal is a 200 with
    ok false, since the call itself was made."""
    return await _tools(request).invoke(p.tenant_id, tool_id, body.arguments, body.timeout_s, "console-test")


@router.delete("/tools/{tool_id}", status_code=204, name="tools.delete", responses=_UPSTREAM)
async def delete_tool(tool_id: ToolId, request: Request, p: Principal = require(Perm.APPS_WRITE)) -> Response:
    """Delete a tool, or every tool under a prefix with `<prefix>.*` (an OpenAPI import, a SQL
    connection, an MCP server)."""
    await _tools(request).delete(p.tenant_id, tool_id)
    return Response(status_code=204)
