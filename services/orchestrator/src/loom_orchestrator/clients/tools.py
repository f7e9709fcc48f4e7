"""`ToolRunner` over tools.v1 Tools/Invoke and ListTools. A tool's refusal (ok=false) becomes
`ToolFailed` with the tools service's error code; the shared `ServiceClient` sets deadlines and
metadata and translates transport failures. Invoke is not retried here (a tool may have side
effects: the node's retry settings decide); ListTools, a read, is."""

from __future__ import annotations

import json
from typing import Any

from loom.tools.v1 import tools_pb2 as pb
from loom.tools.v1 import tools_pb2_grpc
from loom_common.clients.base import NO_RETRY, ServiceClient
from loom_common.errors import RetryableError
from loom_orchestrator.engine.ports import ToolFailed, ToolSchema

# Codes that mean "the tool could not run right now", worth a node retry.
_RETRYABLE_CODES = ("timeout", "unavailable", "upstream_unavailable", "sandbox_busy")
# The sandbox/tool needs time beyond the node's own deadline to report a timeout itself.
_GRACE_S = 2.0


class ToolsClient(ServiceClient):
    service = "tools"

    def __init__(self, addr: str, timeout_s: float = 60.0) -> None:
        super().__init__(addr, timeout_s=timeout_s)

    async def invoke(
        self, tool: str, arguments: dict[str, Any], *, tenant_id: str, run_id: str, node_id: str, timeout_s: float
    ) -> Any:
        req = pb.InvokeRequest(
            tenant_id=tenant_id,
            tool=tool,
            arguments_json=json.dumps(arguments),
            run_id=run_id,
            node_id=node_id,
            timeout_s=timeout_s or 0.0,
        )
        resp = await self.unary(tools_pb2_grpc.ToolsStub(self.channel).Invoke, req, tenant_id=tenant_id,
                                run_id=run_id, timeout_s=(timeout_s or self.timeout_s) + _GRACE_S, retry=NO_RETRY)
        if not resp.ok:
            message = f"{tool}: {resp.error_code}: {resp.error_message}"
            if resp.error_code in _RETRYABLE_CODES:
                raise RetryableError(message)
            raise ToolFailed(message, code=resp.error_code or "tool_failed")
        return json.loads(resp.result_json) if resp.result_json else None

    async def list_tools(self, tenant_id: str, timeout_s: float) -> list[ToolSchema]:
        resp = await self.unary(tools_pb2_grpc.ToolsStub(self.channel).ListTools,
                                pb.ListToolsRequest(tenant_id=tenant_id), tenant_id=tenant_id, timeout_s=timeout_s)
        return [ToolSchema(t.name, t.description, json.loads(t.parameters_json_schema or "{}")) for t in resp.tools]
