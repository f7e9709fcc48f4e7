"""loop: runs its child nodes round after round, at most `loop_count` rounds, until its
break conditions hold (checked after each round) or a loop-end node runs.

Loop variables live in the loop's own pool under its id (children read `[loop_id, name]`
and an assigner writes them); `index` is the current round. Each round's nodes are
journaled under `<key>[<round>]/`, so a resumed loop replays finished rounds from the
journal and decides the same way.
"""

from __future__ import annotations

from loom_common.dsl.flow_nodes import LoopData, LoopEndData, LoopStartData
from loom_orchestrator.engine.conditions import holds
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node, Traits


class LoopNode(Node[LoopData]):
    type, version = "loop", "1"
    traits = Traits(pure=True, container=True)  # its children are journaled, not itself

    async def run(self, data: LoopData, ctx: NodeContext) -> NodeResult:
        loop_pool = ctx.pool.child()
        values = {v.label: (ctx.pool.get(v.value) if v.value_type == "variable" and isinstance(v.value, list)
                            else v.value) for v in data.loop_variables}
        loop_pool.set_scope(ctx.node_id, {**values, "index": 0})
        ctx.emit("loop_started", {"node_id": ctx.node_id, "inputs": values, "created_at": int(ctx.run.clock())})
        rounds = 0
        reason = "loop_count"
        for i in range(data.loop_count):
            loop_pool.assign([ctx.node_id, "index"], i)
            outcome = await ctx.run_scope(ctx.node_id, loop_pool.child(), f"{ctx.key}[{i}]/")
            rounds = i + 1
            ctx.emit("loop_next", {"node_id": ctx.node_id, "index": rounds, "created_at": int(ctx.run.clock())})
            if outcome.loop_end:
                reason = "loop_end"
                break
            if data.break_conditions and holds(data.break_conditions, data.logical_operator, loop_pool):
                reason = "break_conditions"
                break
        scope = loop_pool.scope(ctx.node_id) or {}
        outputs = {v.label: scope.get(v.label) for v in data.loop_variables} | {"loop_round": rounds}
        ctx.emit("loop_completed", {"node_id": ctx.node_id, "outputs": outputs, "steps": rounds,
                                    "created_at": int(ctx.run.clock())})
        return NodeResult(inputs=values, outputs=outputs, process_data={"stopped_by": reason})


class LoopStartNode(Node[LoopStartData]):
    type, version = "loop-start", "1"
    traits = Traits(pure=True, entry=True)

    async def run(self, data, ctx: NodeContext) -> NodeResult:
        return NodeResult()


class LoopEndNode(Node[LoopEndData]):
    type, version = "loop-end", "1"
    traits = Traits(pure=True)

    async def run(self, data, ctx: NodeContext) -> NodeResult:
        return NodeResult(loop_end=True)  # the enclosing loop stops after this round
