"""tools.v1 client for the console's tool routes: list, register (HTTP, OpenAPI, SQL, MCP),
delete and test-invoke a workspace's tools.

The tools service refuses management calls with a gRPC status carrying its refusal code and
field as google.rpc details (its grpc_service.py), read back into `loom_common.errors` by the
shared `ServiceClient`; that becomes the gateway's `{code, message, status, field}` here.
Credentials go in once and never come back: the service's `ToolInfo` says only whether a tool
has some. Only the reads (ListTools) are retried by the client: a registration or an
invocation may have had its effect.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from loom.tools.v1 import tools_pb2 as pb
from loom_common.clients import tools
from loom_common.errors import LoomError
from loom_gateway.clients.errors import api_error
from loom_gateway.domain.errors import ApiError, BadRequest, Conflict, NotFound, Upstream

# The tools service's refusal codes -> (HTTP status, error class). Everything a caller can fix
# by changing the request is a 4xx naming the field.
_STATUS = {"invalid_arguments": 400, "sql_refused": 400, "ssrf_blocked": 400, "upstream_error": 400,
           "response_too_large": 400, "not_found": 404, "conflict": 409, "timeout": 504}


def _error(err: LoomError) -> ApiError:
    code, message, field = err.code, err.detail, err.field
    if code not in _STATUS:
        return api_error(err, "tools")
    status = _STATUS[code]
    if status == 404:
        return NotFound(message, code="tool_not_found")
    if status == 409:
        return Conflict(message, code="tool_exists")
    if status == 504:
        return Upstream(message, code="gateway_timeout", status=504)
    return BadRequest(message, field=field, code=code if code != "invalid_arguments" else None)


@contextlib.asynccontextmanager
async def _refusals() -> AsyncIterator[None]:
    try:
        yield
    except LoomError as err:
        raise _error(err) from None


def _credentials(creds: dict[str, Any] | None) -> pb.Credentials | None:
    if not creds:
        return None
    if creds["type"] == "bearer":
        return pb.Credentials(bearer_token=creds["token"])
    return pb.Credentials(api_key=pb.ApiKey(header=creds["header"], value=creds["value"]))


def tool_body(t: pb.ToolInfo) -> dict[str, Any]:
    """A tool as the console sees it: its name is its id (what tool and agent nodes name)."""
    return {"id": t.name, "name": t.name, "kind": t.kind, "description": t.description,
            "provider": t.name.split(".", 1)[0] if "." in t.name else t.name,
            "parameters": json.loads(t.parameters_json_schema or "{}"), "has_credentials": t.has_credentials}


class ToolsClient:
    """The console's side of tools.v1, over the shared client (loom_common.clients.tools)."""

    def __init__(self, addr: str, timeout_s: float) -> None:
        self.rpc = tools.ToolsClient(addr, timeout_s=timeout_s)

    async def close(self) -> None:
        await self.rpc.close()

    async def list(self, tenant_id: str, kind: str = "") -> list[dict[str, Any]]:
        async with _refusals():
            return [tool_body(t) for t in await self.rpc.list_tools(tenant_id, kind=kind)]

    async def register_http(self, tenant_id: str, *, name: str, description: str, method: str, url: str,
                            parameters: dict | None, headers: dict[str, str], credentials: dict | None,
                            replace: bool) -> list[dict[str, Any]]:
        req = pb.RegisterToolRequest(tenant_id=tenant_id, name=name, description=description, method=method,
                                     url=url, parameters_json_schema=json.dumps(parameters) if parameters else "",
                                     headers=headers, credentials=_credentials(credentials), replace=replace)
        async with _refusals():
            return [tool_body(t) for t in await self.rpc.register_tool(req)]

    async def import_openapi(self, tenant_id: str, *, prefix: str, spec: str, base_url: str,
                             credentials: dict | None, replace: bool) -> list[dict[str, Any]]:
        req = pb.ImportOpenAPIRequest(tenant_id=tenant_id, prefix=prefix, spec=spec, base_url=base_url,
                                      credentials=_credentials(credentials), replace=replace)
        async with _refusals():
            return [tool_body(t) for t in await self.rpc.import_openapi(req)]

    async def add_connection(self, tenant_id: str, *, name: str, driver: str, dsn: str, path: str,
                             description: str, replace: bool) -> list[dict[str, Any]]:
        req = pb.AddConnectionRequest(tenant_id=tenant_id, name=name, driver=driver, dsn=dsn, path=path,
                                      description=description, replace=replace)
        async with _refusals():
            return [tool_body(t) for t in await self.rpc.add_connection(req)]

    async def add_mcp_server(self, tenant_id: str, *, name: str, url: str, headers: dict[str, str],
                             credentials: dict | None, description: str, replace: bool) -> list[dict[str, Any]]:
        req = pb.AddMcpServerRequest(tenant_id=tenant_id, name=name, url=url, headers=headers,
                                     credentials=_credentials(credentials), description=description,
                                     replace=replace)
        async with _refusals():
            return [tool_body(t) for t in await self.rpc.add_mcp_server(req)]

    async def delete(self, tenant_id: str, name: str) -> int:
        async with _refusals():
            return await self.rpc.delete_tool(tenant_id, name)

    async def invoke(self, tenant_id: str, name: str, arguments: dict[str, Any], timeout_s: float,
                     node_id: str) -> dict[str, Any]:
        """One call, as a node would make it (audited by the tools service); a refusal is data."""
        req = pb.InvokeRequest(tenant_id=tenant_id, tool=name, arguments_json=json.dumps(arguments),
                               node_id=node_id, timeout_s=timeout_s)
        async with _refusals():
            r = await self.rpc.invoke(req)
        return {"ok": r.ok, "result": json.loads(r.result_json) if r.ok and r.result_json else None,
                "error_code": r.error_code or None, "error_message": r.error_message or None,
                "error_field": r.error_field or None, "duration_ms": round(r.duration_ms, 2)}
