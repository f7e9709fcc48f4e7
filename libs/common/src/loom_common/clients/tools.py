"""The tools.v1 client every service uses (the gateway's console routes and template installer,
the orchestrator's tool and agent nodes).

Requests and answers are the generated messages: each caller shapes them for its own users.
Only the read (ListTools) is retried here; a registration or an invocation may have had its
effect, so retrying those is the caller's decision (the orchestrator's node retry settings).
A tool's own refusal is not a transport error: it comes back as `InvokeResponse.ok = false`
with the tools service's error code, and `RETRYABLE_CODES` says which of those codes mean
"could not run right now".
"""

from __future__ import annotations

from loom.tools.v1 import tools_pb2 as pb
from loom.tools.v1 import tools_pb2_grpc as pb_grpc
from loom_common.clients.base import DEFAULT_RETRY, NO_RETRY, ServiceClient
from loom_common.retry import RetryPolicy

# Refusal codes of Invoke that are worth a retry: the tool or its sandbox was busy or away.
RETRYABLE_CODES = frozenset({"timeout", "unavailable", "upstream_unavailable", "sandbox_busy"})

# A tool's own deadline is enforced by the tools service, which needs a moment past it to say so.
INVOKE_GRACE_S = 2.0


class ToolsClient(ServiceClient):
    service = "tools"

    def __init__(self, addr: str, *, timeout_s: float, retry: RetryPolicy = DEFAULT_RETRY) -> None:
        super().__init__(addr, timeout_s=timeout_s, retry=retry)
        self._stub: pb_grpc.ToolsStub | None = None

    @property
    def stub(self) -> pb_grpc.ToolsStub:
        if self._stub is None:
            self._stub = pb_grpc.ToolsStub(self.channel)
        return self._stub

    async def close(self) -> None:
        self._stub = None
        await super().close()

    async def list_tools(self, tenant_id: str, *, kind: str = "", timeout_s: float | None = None
                         ) -> list[pb.ToolInfo]:
        res = await self.unary(self.stub.ListTools, pb.ListToolsRequest(tenant_id=tenant_id, kind=kind),
                               tenant_id=tenant_id, timeout_s=timeout_s)
        return list(res.tools)

    async def invoke(self, request: pb.InvokeRequest, *, run_id: str | None = None) -> pb.InvokeResponse:
        """One call of one tool, bounded by the request's own `timeout_s` (else the client's)."""
        return await self.unary(self.stub.Invoke, request, tenant_id=request.tenant_id, run_id=run_id,
                                timeout_s=(request.timeout_s or self.timeout_s) + INVOKE_GRACE_S, retry=NO_RETRY)

    async def register_tool(self, request: pb.RegisterToolRequest) -> list[pb.ToolInfo]:
        return list((await self._write(self.stub.RegisterTool, request)).tools)

    async def import_openapi(self, request: pb.ImportOpenAPIRequest) -> list[pb.ToolInfo]:
        return list((await self._write(self.stub.ImportOpenAPI, request)).tools)

    async def add_connection(self, request: pb.AddConnectionRequest) -> list[pb.ToolInfo]:
        return list((await self._write(self.stub.AddConnection, request)).tools)

    async def add_mcp_server(self, request: pb.AddMcpServerRequest) -> list[pb.ToolInfo]:
        return list((await self._write(self.stub.AddMcpServer, request)).tools)

    async def delete_tool(self, tenant_id: str, name: str) -> int:
        """`name` may end in `.*`: every tool of that provider (a connection, an imported spec)."""
        res = await self._write(self.stub.DeleteTool, pb.DeleteToolRequest(tenant_id=tenant_id, name=name))
        return res.deleted

    async def _write(self, method, request):
        return await self.unary(method, request, tenant_id=request.tenant_id, retry=NO_RETRY)
