"""Built-in tools every tenant has: time, arithmetic, JSON query, text utilities, charts.

Each module exports `TOOLS`, a list of (spec, function) pairs; functions are plain and
synchronous because they are small and bounded by their input sizes, except those that are
coroutines because they work in a bounded child process (chart.render).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from loom_tools.builtins import arithmetic, chart, clock, jsonquery, text
from loom_tools.domain.types import ToolSpec

Fn = Callable[[dict[str, Any]], Any]


def catalog() -> dict[str, tuple[ToolSpec, Fn]]:
    return {spec.name: (spec, fn) for mod in (clock, arithmetic, jsonquery, text, chart) for spec, fn in mod.TOOLS}


class BuiltinRunner:
    def __init__(self) -> None:
        self._fns = {name: fn for name, (_, fn) in catalog().items()}

    async def run(self, spec: ToolSpec, args: dict[str, Any], timeout_s: float) -> Any:
        result = self._fns[spec.name](args)
        return await result if inspect.isawaitable(result) else result
