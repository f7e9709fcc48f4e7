"""assigner (variable assigner v2): writes conversation variables or a loop's variables.

The node computes the new values and returns them as `writes`; the engine applies them,
both now and when a resumed run replays this node from the journal.
"""

from __future__ import annotations

from typing import Any

from loom_common.dsl.flow_nodes import AssignItem, VariableAssignerData
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node, Traits


class VariableAssignerNode(Node[VariableAssignerData]):
    type, version = "assigner", "2"
    traits = Traits(pure=True)

    async def run(self, data: VariableAssignerData, ctx: NodeContext) -> NodeResult:
        writes: list[list[Any]] = []
        for i, item in enumerate(data.items):
            target = item.variable_selector
            if target[0] not in ("conversation",) and ctx.pool.scope(target[0]) is None:
                raise ValueError(f"items.{i}.variable_selector: {'.'.join(target)} is not a writable variable")
            current = ctx.pool.get(target)
            value = ctx.pool.get(item.value) if item.input_type == "variable" else item.value
            new = _apply(item, current, value, i)
            ctx.pool.assign(target, new)  # later items see earlier ones
            writes.append([list(target), new])
        return NodeResult(outputs={}, writes=writes,
                          process_data={"updated_variables": [{"selector": w[0], "value": w[1]} for w in writes]})


def _apply(item: AssignItem, current: Any, value: Any, i: int) -> Any:
    op = item.operation
    if op in ("over-write", "set"):
        return value
    if op == "clear":
        return [] if isinstance(current, list) else {} if isinstance(current, dict) else \
            0 if isinstance(current, int | float) and not isinstance(current, bool) else ""
    if op in ("append", "extend", "remove-first", "remove-last"):
        items = list(current or [])
        if op == "append":
            return [*items, value]
        if op == "extend":
            return [*items, *(value or [])]
        return items[1:] if op == "remove-first" else items[:-1]
    try:
        a, b = float(current or 0), float(value)
    except (TypeError, ValueError):
        raise ValueError(f"items.{i}: '{op}' needs numbers") from None
    if op == "/=" and b == 0:
        raise ValueError(f"items.{i}: division by zero")
    result = {"+=": a + b, "-=": a - b, "*=": a * b, "/=": a / b if b else 0}[op]
    return int(result) if result.is_integer() and not isinstance(current, float) else result
