"""start: checks the run's inputs against the app's typed input variables and outputs them."""

from __future__ import annotations

from loom_common.dsl.flow_nodes import StartData
from loom_common.dsl.inputs import check_inputs
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node, Traits

INPUTS_SCOPE = "__inputs"  # where the run's raw inputs wait for the start node


class StartNode(Node[StartData]):
    type, version = "start", "1"
    traits = Traits(pure=True, entry=True)

    async def run(self, data: StartData, ctx: NodeContext) -> NodeResult:
        raw = ctx.pool.scope(INPUTS_SCOPE) or {}
        return NodeResult(outputs=check_inputs(data.variables, raw), inputs=dict(raw))
