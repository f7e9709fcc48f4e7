"""variable-aggregator: the first of its variables that has a value (the branch that ran)."""

from __future__ import annotations

from loom_common.dsl.flow_nodes import VariableAggregatorData
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node, Traits


class VariableAggregatorNode(Node[VariableAggregatorData]):
    type, version = "variable-aggregator", "1"
    traits = Traits(pure=True)

    async def run(self, data: VariableAggregatorData, ctx: NodeContext) -> NodeResult:
        for sel in data.variables:
            value = ctx.pool.get(sel)
            if value is not None:
                return NodeResult(outputs={"output": value}, inputs={"selected": sel})
        return NodeResult(outputs={"output": None})
