"""The variable pool of a run: every node's outputs, the `sys`, `env` and `conversation`
scopes, and the overlays iterations and loops run in.

A child pool (one per iteration item or loop round) sees its parent's values and keeps its
own node outputs, so parallel iterations never see each other's inner nodes. Writes through
`assign` go to the pool that owns the first selector part (a loop's variables live in the
loop's pool, conversation variables in the root pool).
"""

from __future__ import annotations

import json
from typing import Any

from loom_common.dsl.references import segments

MISSING = object()


class VariablePool:
    def __init__(self, parent: VariablePool | None = None) -> None:
        self.parent = parent
        self._scopes: dict[str, dict[str, Any]] = {}

    def child(self) -> VariablePool:
        return VariablePool(self)

    def set_scope(self, name: str, values: dict[str, Any]) -> None:
        self._scopes[name] = dict(values)

    def scope(self, name: str) -> dict[str, Any] | None:
        pool: VariablePool | None = self
        while pool is not None:
            if name in pool._scopes:
                return pool._scopes[name]
            pool = pool.parent
        return None

    def get(self, selector: list[str] | tuple[str, ...], default: Any = None) -> Any:
        values = self.scope(selector[0])
        if values is None:
            return default
        cur: Any = values
        for part in selector[1:]:
            if isinstance(cur, dict) and part in cur:
                cur = cur[part]
            elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
                cur = cur[int(part)]
            else:
                return default
        return cur

    def has(self, selector: list[str] | tuple[str, ...]) -> bool:
        return self.get(selector, MISSING) is not MISSING

    def assign(self, selector: list[str], value: Any) -> None:
        values = self.scope(selector[0])
        if values is None:
            raise KeyError(f"no variable scope '{selector[0]}' to write {'.'.join(selector)}")
        cur = values
        for part in selector[1:-1]:
            cur = cur.setdefault(part, {})
        cur[selector[-1]] = value

    def render(self, template: str) -> str:
        """Replace every `{{#node.field#}}` with its value as text (missing -> empty)."""
        return "".join(seg.text if seg.selector is None else to_text(self.get(seg.selector))
                       for seg in segments(template))


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)
