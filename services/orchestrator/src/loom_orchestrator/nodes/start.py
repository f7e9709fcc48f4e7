"""start: checks the run's inputs against the app's typed input variables and outputs them."""

from __future__ import annotations

from typing import Any

from loom_common.dsl.flow_nodes import StartData
from loom_orchestrator.engine.context import NodeContext, NodeResult

INPUTS_SCOPE = "__inputs"  # where the run's raw inputs wait for the start node


class StartNode:
    type, version, pure = "start", "1", True

    async def run(self, data: StartData, ctx: NodeContext) -> NodeResult:
        raw = ctx.pool.scope(INPUTS_SCOPE) or {}
        out: dict[str, Any] = {}
        for var in data.variables:
            value = raw.get(var.variable, var.default)
            if value in (None, ""):
                if var.required:
                    raise ValueError(f"input '{var.variable}' is required")
                out[var.variable] = value
                continue
            out[var.variable] = _coerce(var, value)
        return NodeResult(outputs=out, inputs=dict(raw))


def _coerce(var: Any, value: Any) -> Any:
    name = var.variable
    if var.type == "number":
        if isinstance(value, bool):
            raise ValueError(f"input '{name}' must be a number")
        try:
            num = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"input '{name}' must be a number") from None
        return int(num) if num.is_integer() else num
    if var.type in ("text-input", "paragraph", "select"):
        if not isinstance(value, str):
            raise ValueError(f"input '{name}' must be text")
        if var.max_length and len(value) > var.max_length:
            raise ValueError(f"input '{name}' is longer than {var.max_length} characters")
        if var.type == "select" and var.options and value not in var.options:
            raise ValueError(f"input '{name}' must be one of {var.options}")
    if var.type == "checkbox" and not isinstance(value, bool):
        raise ValueError(f"input '{name}' must be true or false")
    if var.type == "json_object" and not isinstance(value, dict):
        raise ValueError(f"input '{name}' must be a JSON object")
    return value
