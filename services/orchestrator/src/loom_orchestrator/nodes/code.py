"""code: user code run by the tools service's sandbox (`code.python` / `code.javascript`),
never in this process. `main(**inputs)` returns a dict; declared outputs are type-checked."""

from __future__ import annotations

from typing import Any

from loom_common.dsl.flow_nodes import CodeData
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node

_TOOLS = {"python3": "code.python", "javascript": "code.javascript"}
_CHECKS = {"string": str, "number": (int, float), "object": dict, "boolean": bool}


class CodeNode(Node[CodeData]):
    type, version = "code", "1"

    async def run(self, data: CodeData, ctx: NodeContext) -> NodeResult:
        if ctx.services.tools is None:
            raise RuntimeError("no tools service configured for code nodes")
        inputs = {v.variable: ctx.pool.get(v.value_selector) for v in data.variables}
        result = await ctx.services.tools.invoke(
            _TOOLS[data.code_language], {"code": data.code, "inputs": inputs}, tenant_id=ctx.run.tenant_id,
            run_id=ctx.run.run_id, node_id=ctx.node_id, timeout_s=ctx.timeout_s)
        if not isinstance(result, dict):
            raise ValueError(f"main() must return a dict, got {type(result).__name__}")
        for name, spec in data.outputs.items():
            if name not in result:
                raise ValueError(f"output '{name}' is missing from main()'s result")
            _check(name, spec.type, result[name])
        return NodeResult(outputs=result, inputs=inputs)


def _check(name: str, kind: str, value: Any) -> None:
    if value is None:
        return
    if kind.startswith("array"):
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, _CHECKS[kind]) and not (kind == "number" and isinstance(value, bool))
    if not ok:
        raise ValueError(f"output '{name}' should be {kind}, got {type(value).__name__}")
