"""list-operator: filter, pick, sort and cut a list of strings, numbers or files (Dify's order:
filter -> extract_by -> order_by -> limit). Outputs `result`, `first_record`, `last_record`.

A list's kind is read from its items: all numbers, all strings, or all files (mappings, as
`sys.files` and file inputs hold them). A file is compared by one of Dify's keys (name, type,
extension, mime_type, transfer_method, url, size); a bad key or value is the node's error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loom_common.dsl.list_nodes import FilterCondition, ListOperatorData
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node, Traits
from loom_orchestrator.engine.variables import VariablePool

_TEXT_KEYS = {"name", "type", "extension", "mime_type", "transfer_method", "url"}


def file_value(file: dict[str, Any], key: str) -> Any:
    """A file entry's field under Dify's key names (a run's files carry Dify's request shape)."""
    if key == "size":
        return file.get("size") or 0
    if key == "name":
        return file.get("filename") or file.get("name") or ""
    if key == "url":
        return file.get("remote_url") or file.get("url") or ""
    if key == "extension":
        ext = str(file.get("extension") or "")
        return ext if not ext or ext.startswith(".") else f".{ext}"  # Dify's extensions keep the dot
    if key in _TEXT_KEYS:
        return str(file.get(key) or "")
    raise ValueError(f"filter_by/order_by key: {key!r} is not a file field; use one of "
                     f"{', '.join(sorted(_TEXT_KEYS | {'size'}))}")


def _kind(items: list[Any]) -> str:
    if all(isinstance(x, int | float) and not isinstance(x, bool) for x in items):
        return "number"
    if all(isinstance(x, str) for x in items):
        return "string"
    if all(isinstance(x, dict) for x in items):
        return "file"
    raise ValueError("variable: the list must hold only strings, only numbers or only files")


def _text_test(op: str, value: str | list[str]) -> Callable[[str], bool]:
    tests: dict[str, Callable[[str], bool]] = {
        "contains": lambda x: isinstance(value, str) and value in x,
        "not contains": lambda x: not (isinstance(value, str) and value in x),
        "start with": lambda x: x.startswith(str(value)),
        "end with": lambda x: x.endswith(str(value)),
        "is": lambda x: x == value,
        "is not": lambda x: x != value,
        "in": lambda x: x in value,
        "not in": lambda x: x not in value,
        "empty": lambda x: x == "",
        "not empty": lambda x: x != "",
    }
    if op not in tests:
        raise ValueError(f"filter_by: '{op}' does not compare text")
    return tests[op]


def _number_test(op: str, value: Any) -> Callable[[float], bool]:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"filter_by: {value!r} is not a number") from None
    tests = {"=": lambda x: x == v, "≠": lambda x: x != v, "<": lambda x: x < v, ">": lambda x: x > v,
             "≤": lambda x: x <= v, "≥": lambda x: x >= v}
    if op not in tests:
        raise ValueError(f"filter_by: '{op}' does not compare numbers")
    return tests[op]


def _resolve(value: Any, pool: VariablePool) -> Any:
    return pool.render(value) if isinstance(value, str) and "{{#" in value else value


def _keep(cond: FilterCondition, kind: str, pool: VariablePool) -> Callable[[Any], bool]:
    value = _resolve(cond.value, pool)
    if kind == "number":
        return _number_test(cond.comparison_operator, value)
    if kind == "string":
        return _text_test(cond.comparison_operator, value if isinstance(value, list) else str(value))
    if cond.key == "size":
        test = _number_test(cond.comparison_operator, value)
        return lambda f: test(float(file_value(f, "size")))
    if isinstance(value, bool):
        value = str(value).lower()
    text_test = _text_test(cond.comparison_operator, value)
    return lambda f: text_test(file_value(f, cond.key))


class ListOperatorNode(Node[ListOperatorData]):
    type, version = "list-operator", "1"
    traits = Traits(pure=True)

    async def run(self, data: ListOperatorData, ctx: NodeContext) -> NodeResult:
        items = ctx.pool.get(data.variable)
        if items is None:
            raise ValueError(f"variable: nothing at {'.'.join(data.variable)}")
        if not isinstance(items, list):
            raise ValueError(f"variable: {'.'.join(data.variable)} is not a list")
        result = list(items)
        if result:
            kind = _kind(result)
            if data.filter_by.enabled:
                for cond in data.filter_by.conditions:
                    test = _keep(cond, kind, ctx.pool)
                    result = [x for x in result if test(x)]
            if data.extract_by.enabled:
                result = [_nth(result, data.extract_by.serial, ctx.pool)]
            if data.order_by.enabled:
                key = (lambda f: file_value(f, data.order_by.key)) if kind == "file" else None
                result = sorted(result, key=key, reverse=data.order_by.value == "desc")
            if data.limit.enabled:
                result = result[: data.limit.size]
        return NodeResult(outputs={"result": result, "first_record": result[0] if result else None,
                                   "last_record": result[-1] if result else None},
                          inputs={"variable": items})


def _nth(items: list[Any], serial: str, pool: VariablePool) -> Any:
    text = _resolve(serial, pool).strip()
    if not text.lstrip("-").isdigit():
        raise ValueError(f"extract_by.serial: {text!r} is not a whole number")
    n = int(text)
    if not 1 <= n <= len(items):
        raise ValueError(f"extract_by.serial: {n} is outside 1..{len(items)}")
    return items[n - 1]
