"""`ToolRunner` over the shared tools.v1 client (loom_common.clients.tools: deadline, metadata,
transport errors). A tool's refusal (ok=false) becomes `ToolFailed` with the tools service's
error code, or a `RetryableError` for the codes that mean "not right now" (the node's retry
settings decide). Invoke is not retried by the client (a tool may have side effects); ListTools,
a read, is."""

from __future__ import annotations

import json
from typing import Any

from loom.tools.v1 import tools_pb2 as pb
from loom_common.clients import tools
from loom_common.errors import RetryableError
from loom_orchestrator.engine.ports import ToolFailed, ToolSchema


class ToolsClient:
    def __init__(self, addr: str, timeout_s: float = 60.0) -> None:
        self.rpc = tools.ToolsClient(addr, timeout_s=timeout_s)

    async def close(self) -> None:
        await self.rpc.close()

    async def invoke(
        self, tool: str, arguments: dict[str, Any], *, tenant_id: str, run_id: str, node_id: str, timeout_s: float
    ) -> Any:
        req = pb.InvokeRequest(tenant_id=tenant_id, tool=tool, arguments_json=json.dumps(arguments), run_id=run_id,
                               node_id=node_id, timeout_s=timeout_s or 0.0)
        resp = await self.rpc.invoke(req, run_id=run_id)
        if not resp.ok:
            message = f"{tool}: {resp.error_code}: {resp.error_message}"
            if resp.error_code in tools.RETRYABLE_CODES:
                raise RetryableError(message)
            raise ToolFailed(message, code=resp.error_code or "tool_failed")
        return json.loads(resp.result_json) if resp.result_json else None

    async def list_tools(self, tenant_id: str, timeout_s: float) -> list[ToolSchema]:
        return [ToolSchema(t.name, t.description, json.loads(t.parameters_json_schema or "{}"))
                for t in await self.rpc.list_tools(tenant_id, timeout_s=timeout_s)]
