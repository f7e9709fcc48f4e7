"""iteration: runs its child nodes once per item of a list, sequentially or in parallel
(at most `parallel_nums` at once); collects `output_selector` from each round in order.

Each round runs in its own child pool holding `{item, index}` under the iteration's id, and
its node executions are journaled under `<key>[<index>]/`, so a resumed run skips the
rounds (and the nodes of a round) that had finished.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loom_common.dsl.flow_nodes import IterationData, IterationStartData
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node, Traits


class IterationNode(Node[IterationData]):
    type, version = "iteration", "1"
    traits = Traits(pure=True, container=True)  # its children are journaled, not itself

    async def run(self, data: IterationData, ctx: NodeContext) -> NodeResult:
        items = ctx.pool.get(data.iterator_selector)
        if not isinstance(items, list):
            raise ValueError(f"iterator_selector: {'.'.join(data.iterator_selector)} is not a list")
        ctx.emit("iteration_started", {"node_id": ctx.node_id, "inputs": {"iterator_length": len(items)},
                                       "created_at": int(ctx.run.clock())})
        results: list[Any] = [None] * len(items)
        failed: set[int] = set()
        gate = asyncio.Semaphore(data.parallel_nums if data.is_parallel else 1)
        tokens = 0

        async def one(i: int, item: Any) -> None:
            nonlocal tokens
            async with gate:
                pool = ctx.pool.child()
                pool.set_scope(ctx.node_id, {"item": item, "index": i})
                try:
                    outcome = await ctx.run_scope(ctx.node_id, pool, f"{ctx.key}[{i}]/")
                except Exception:
                    if data.error_handle_mode == "terminated":
                        raise
                    failed.add(i)
                    return
                tokens += outcome.tokens
                results[i] = pool.get(data.output_selector)
                ctx.emit("iteration_next", {"node_id": ctx.node_id, "index": i + 1,
                                            "created_at": int(ctx.run.clock())})

        await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
        if data.error_handle_mode == "remove-abnormal-output":
            results = [r for i, r in enumerate(results) if i not in failed]
        ctx.emit("iteration_completed", {"node_id": ctx.node_id, "outputs": {"output": results},
                                         "steps": len(items), "created_at": int(ctx.run.clock())})
        return NodeResult(inputs={"iterator_length": len(items)}, outputs={"output": results},
                          process_data={"failed_indexes": sorted(failed), "tokens": tokens})


class IterationStartNode(Node[IterationStartData]):
    type, version = "iteration-start", "1"
    traits = Traits(pure=True, entry=True)

    async def run(self, data, ctx: NodeContext) -> NodeResult:
        return NodeResult()
