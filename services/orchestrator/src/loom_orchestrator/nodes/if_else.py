"""if-else: the first case whose conditions hold picks the branch (its case_id), else `false`."""

from __future__ import annotations

from loom_common.dsl.flow_nodes import IfElseData
from loom_orchestrator.engine.conditions import holds
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node, Traits


class IfElseNode(Node[IfElseData]):
    type, version = "if-else", "1"
    traits = Traits(pure=True)

    async def run(self, data: IfElseData, ctx: NodeContext) -> NodeResult:
        for case in data.cases:
            if holds(case.conditions, case.logical_operator, ctx.pool):
                return NodeResult(outputs={"result": True, "selected_case_id": case.case_id},
                                  edge_handle=case.case_id)
        return NodeResult(outputs={"result": False, "selected_case_id": "false"}, edge_handle="false")
