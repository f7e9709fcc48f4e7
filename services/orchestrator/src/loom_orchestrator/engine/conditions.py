"""Dify's comparison operators and and/or logic, for if-else cases and loop break conditions."""

from __future__ import annotations

from typing import Any

from loom_common.dsl.base import Condition
from loom_orchestrator.engine.variables import MISSING, VariablePool


def _num(v: Any) -> float:
    if isinstance(v, bool):
        return float(v)
    return float(v)


def _empty(v: Any) -> bool:
    return v is None or v is MISSING or v == "" or v == [] or v == {}


def compare(actual: Any, op: str, expected: Any) -> bool:
    if op in ("empty", "null", "not exists"):
        return _empty(actual) if op == "empty" else actual is None or actual is MISSING
    if op in ("not empty", "not null", "exists"):
        return not _empty(actual) if op == "not empty" else actual is not None and actual is not MISSING
    if actual is MISSING or actual is None:
        return op in ("not contains", "is not", "≠", "not in")
    if op == "contains":
        return expected in actual
    if op == "not contains":
        return expected not in actual
    if op == "start with":
        return isinstance(actual, str) and actual.startswith(str(expected))
    if op == "end with":
        return isinstance(actual, str) and actual.endswith(str(expected))
    if op == "is":
        return _loose(actual) == _loose(expected)
    if op == "is not":
        return _loose(actual) != _loose(expected)
    if op in ("in", "not in"):
        inside = actual in (expected if isinstance(expected, list | str) else [expected])
        return inside if op == "in" else not inside
    if op == "all of":
        return isinstance(actual, list) and all(x in actual for x in (expected or []))
    try:
        a, b = _num(actual), _num(expected)
    except (TypeError, ValueError):
        return False
    return {"=": a == b, "≠": a != b, ">": a > b, "<": a < b, "≥": a >= b, "≤": a <= b}[op]


def _loose(v: Any) -> Any:
    # Dify compares `is` on text; the editor stores booleans and numbers as strings.
    return str(v).lower() if isinstance(v, bool) else str(v)


def holds(conditions: list[Condition], logical_operator: str, pool: VariablePool) -> bool:
    results = (compare(pool.get(c.variable_selector, MISSING), c.comparison_operator, _value(c.value, pool))
               for c in conditions)
    return all(results) if logical_operator == "and" else any(results)


def _value(value: Any, pool: VariablePool) -> Any:
    # A condition value may itself hold references: "{{#start.limit#}}".
    if isinstance(value, str) and "{{#" in value:
        return pool.render(value)
    return value
