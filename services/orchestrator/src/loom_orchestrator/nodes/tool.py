"""tool: one call of a tools-service tool; parameters are constants, selectors or templates."""

from __future__ import annotations

from typing import Any

from loom_common.dsl.flow_nodes import ToolData
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node
from loom_orchestrator.engine.variables import to_text


class ToolNode(Node[ToolData]):
    type, version = "tool", "1"

    async def run(self, data: ToolData, ctx: NodeContext) -> NodeResult:
        if ctx.services.tools is None:
            raise RuntimeError("no tools service configured for tool nodes")
        args: dict[str, Any] = {}
        for name, p in data.tool_parameters.items():
            if p.type == "variable" and isinstance(p.value, list):
                args[name] = ctx.pool.get(p.value)
            elif p.type == "mixed" and isinstance(p.value, str):
                args[name] = ctx.pool.render(p.value)
            else:
                args[name] = p.value
        result = await ctx.services.tools.invoke(data.tool_name, args, tenant_id=ctx.run.tenant_id,
                                                 run_id=ctx.run.run_id, node_id=ctx.node_id, timeout_s=ctx.timeout_s)
        return NodeResult(inputs=args, outputs={"text": to_text(result), "json": result},
                          process_data={"tool": data.tool_name})
