"""tools.v1 servicer: thin over the executor and the catalog (parse, call, map back).

Invoke reports a tool's refusal in the response (ok=false, error_code, error_field); the
management RPCs abort with the gRPC status matching the typed error, its message as the details
text, its code as a google.rpc.ErrorInfo reason and its field as a google.rpc.BadRequest
(loom_common.grpc_errors; read back by `error_from_rpc`).
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from loom.tools.v1 import tools_pb2 as pb
from loom.tools.v1 import tools_pb2_grpc
from loom_common.grpc_errors import abort
from loom_common.logging import get_logger
from loom_tools.domain.types import Call, ToolSpec
from loom_tools.errors import InvalidArguments, ToolError
from loom_tools.toolbox import Toolbox

log = get_logger(__name__)


def _info(spec: ToolSpec) -> pb.ToolInfo:
    return pb.ToolInfo(name=spec.name, description=spec.description, kind=spec.kind,
                       parameters_json_schema=json.dumps(spec.parameters),
                       has_credentials=spec.has_credentials or bool(spec.credentials))


def _credentials(msg: pb.Credentials, present: bool) -> dict[str, Any] | None:
    if not present:
        return None
    which = msg.WhichOneof("auth")
    if which == "api_key":
        return {"type": "api_key", "header": msg.api_key.header, "value": msg.api_key.value}
    if which == "bearer_token":
        return {"type": "bearer", "token": msg.bearer_token}
    return None


def _json_object(text: str, field: str) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidArguments(f"argument {field!r}: not JSON: {exc}", field=field) from exc
    if not isinstance(value, dict):
        raise InvalidArguments(f"argument {field!r}: a JSON object is required", field=field)
    return value


async def _guarded(context, coro):
    try:
        return await coro
    except ToolError as exc:
        await abort(context, exc)  # the status its class declares (errors.py), its code and field as details
    except Exception:
        log.exception("management call failed")
        await context.abort(grpc.StatusCode.INTERNAL, "internal: see the tools service log")


def _tenant(request) -> str:
    if not request.tenant_id:
        raise InvalidArguments("argument 'tenant_id': required", field="tenant_id")
    return request.tenant_id


class ToolsServicer(tools_pb2_grpc.ToolsServicer):
    def __init__(self, toolbox: Toolbox) -> None:
        self.executor = toolbox.executor
        self.catalog = toolbox.catalog

    async def ListTools(self, request: pb.ListToolsRequest, context) -> pb.ListToolsResponse:
        specs = await _guarded(context, self.executor.list(request.tenant_id, request.kind))
        return pb.ListToolsResponse(tools=[_info(s) for s in specs])

    async def Invoke(self, request: pb.InvokeRequest, context) -> pb.InvokeResponse:
        try:
            args = json.loads(request.arguments_json or "{}")
        except ValueError as exc:
            return pb.InvokeResponse(ok=False, error_code="invalid_arguments", error_field="arguments_json",
                                     error_message=f"arguments_json is not JSON: {exc}")
        if not request.tenant_id:
            return pb.InvokeResponse(ok=False, error_code="invalid_arguments", error_field="tenant_id",
                                     error_message="tenant_id is required")
        out = await self.executor.invoke(Call(request.tenant_id, request.tool, args, request.run_id,
                                              request.node_id, request.timeout_s))
        return pb.InvokeResponse(ok=out.ok, result_json=json.dumps(out.result) if out.ok else "",
                                 error_code=out.error_code, error_message=out.error_message,
                                 error_field=out.error_field, duration_ms=out.duration_ms)

    async def RegisterTool(self, r: pb.RegisterToolRequest, context) -> pb.RegisterToolResponse:
        async def call():
            return await self.catalog.register_http(
                _tenant(r), name=r.name, description=r.description, method=r.method, url=r.url,
                parameters=_json_object(r.parameters_json_schema, "parameters_json_schema"),
                headers=dict(r.headers), credentials=_credentials(r.credentials, r.HasField("credentials")),
                replace=r.replace)
        return pb.RegisterToolResponse(tools=[_info(s) for s in await _guarded(context, call())])

    async def ImportOpenAPI(self, r: pb.ImportOpenAPIRequest, context) -> pb.RegisterToolResponse:
        async def call():
            return await self.catalog.import_openapi(
                _tenant(r), prefix=r.prefix, spec=r.spec, base_url=r.base_url,
                credentials=_credentials(r.credentials, r.HasField("credentials")), replace=r.replace)
        return pb.RegisterToolResponse(tools=[_info(s) for s in await _guarded(context, call())])

    async def AddConnection(self, r: pb.AddConnectionRequest, context) -> pb.RegisterToolResponse:
        async def call():
            return await self.catalog.add_connection(
                _tenant(r), name=r.name, driver=r.driver, dsn=r.dsn, path=r.path, description=r.description,
                replace=r.replace)
        return pb.RegisterToolResponse(tools=[_info(s) for s in await _guarded(context, call())])

    async def AddMcpServer(self, r: pb.AddMcpServerRequest, context) -> pb.RegisterToolResponse:
        async def call():
            return await self.catalog.add_mcp_server(
                _tenant(r), name=r.name, url=r.url, headers=dict(r.headers),
                credentials=_credentials(r.credentials, r.HasField("credentials")), description=r.description,
                replace=r.replace)
        return pb.RegisterToolResponse(tools=[_info(s) for s in await _guarded(context, call())])

    async def DeleteTool(self, r: pb.DeleteToolRequest, context) -> pb.DeleteToolResponse:
        async def call():
            return await self.catalog.delete(_tenant(r), r.name)
        return pb.DeleteToolResponse(deleted=await _guarded(context, call()))
