"""end: the workflow's outputs, each taken from a selector."""

from __future__ import annotations

from loom_common.dsl.flow_nodes import EndData
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node, Traits


class EndNode(Node[EndData]):
    type, version = "end", "1"
    traits = Traits(pure=True)

    async def run(self, data: EndData, ctx: NodeContext) -> NodeResult:
        outputs = {o.variable: ctx.pool.get(o.value_selector) for o in data.outputs}
        return NodeResult(outputs=outputs, inputs=outputs, run_outputs=outputs)

    def shows_first(self, data: EndData) -> tuple[str, ...] | None:
        return tuple(data.outputs[0].value_selector) if data.outputs else None
