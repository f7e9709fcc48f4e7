"""Safe arithmetic: the expression's AST is walked over an allowlist of nodes; no eval.

Exponents and operand sizes are bounded so `9**9**9` is refused instead of eating the CPU.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any

from loom_tools.domain.types import ToolSpec
from loom_tools.errors import InvalidArguments

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCS = {"abs": abs, "round": round, "min": min, "max": max, "sqrt": math.sqrt, "log": math.log,
          "log10": math.log10, "exp": math.exp, "sin": math.sin, "cos": math.cos, "tan": math.tan,
          "floor": math.floor, "ceil": math.ceil}
_CONSTS = {"pi": math.pi, "e": math.e}
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 10**300


def _fail(msg: str) -> InvalidArguments:
    return InvalidArguments(f"argument 'expression': {msg}", field="expression")


def _eval(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTS:
        return _CONSTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise _fail(f"exponent {right} is larger than {MAX_EXPONENT}")
        try:
            value = _BIN[type(node.op)](left, right)
        except ZeroDivisionError as exc:
            raise _fail("division by zero") from exc
        if isinstance(value, int | float) and abs(value) > MAX_MAGNITUDE:
            raise _fail("result too large")
        return value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS
            and not node.keywords):
        try:
            return _FUNCS[node.func.id](*(_eval(a) for a in node.args))
        except (ValueError, TypeError, OverflowError) as exc:
            raise _fail(f"{node.func.id}: {exc}") from exc
    raise _fail(f"{type(node).__name__} is not allowed (numbers, + - * / // % **, "
                f"{', '.join(sorted(_FUNCS))}, pi, e)")


def evaluate(args: dict[str, Any]) -> dict[str, Any]:
    expr = args["expression"]
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise _fail(f"syntax error: {exc.msg}") from exc
    return {"expression": expr, "result": _eval(tree)}


TOOLS = [
    (ToolSpec("math.eval", "Evaluate an arithmetic expression, e.g. '(2 + 3) * sqrt(16)'.", "builtin",
              {"type": "object", "properties": {"expression": {"type": "string", "maxLength": 1000}},
               "required": ["expression"], "additionalProperties": False}),
     evaluate),
]
