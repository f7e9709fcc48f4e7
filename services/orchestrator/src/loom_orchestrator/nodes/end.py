"""end: the workflow's outputs, each taken from a selector."""

from __future__ import annotations

from loom_common.dsl.flow_nodes import EndData
from loom_orchestrator.engine.context import NodeContext, NodeResult


class EndNode:
    type, version, pure = "end", "1", True

    async def run(self, data: EndData, ctx: NodeContext) -> NodeResult:
        outputs = {o.variable: ctx.pool.get(o.value_selector) for o in data.outputs}
        return NodeResult(outputs=outputs, inputs=outputs)
