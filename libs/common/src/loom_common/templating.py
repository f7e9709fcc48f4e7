"""Jinja2 for templates users write (template-transform nodes, prompts), on a budget.

Jinja's sandbox stops escapes (no `__class__.__mro__`), not work: `{{ 'a' * 50000000 }}` is
twenty characters that allocate 50 MB in one C call, and rendered on an event loop it stalls
every run of the process. The budget, in layers:

  1. Size checks before the operation runs (`BudgetedEnvironment`): the binary operators
     (`*`, `+`, `**`, `%` on strings), the string methods that pad or repeat (ljust, center,
     zfill, expandtabs, replace, format) and the filters that do (center, indent, format,
     replace, join, wordwrap) refuse a result over `max_string` characters (MAX_STRING by
     default); range()
     is capped at `MAX_RANGE` items.
  2. A deadline, checked on every call, attribute access, operator and filter above, and
     between output chunks; output is counted as it is produced (`max_output`).
  3. `render` runs the template in a worker thread (never on the event loop) and, should the
     template sit in pure-Python work that touches none of the checks past its deadline,
     raises `RenderBudgetExceeded` inside that thread (CPython's PyThreadState_SetAsyncExc,
     delivered at the next bytecode). Only a single C call can outlast it, and layer 1 keeps
     each of those small.

Every refusal is a `RenderBudgetExceeded` (a jinja2 SecurityError, so a TemplateError).
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jinja2 import Template
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment, SecurityError

MAX_STRING = 1_000_000     # characters one operation may produce
MAX_RANGE = 10_000         # items range() may yield
MAX_INT_BITS = 100_000     # size of an integer `**` may produce

_state = threading.local()     # the deadline of the render running on this thread


class RenderBudgetExceeded(SecurityError):
    """A template asked for more time, memory or output than its budget."""


def _check_deadline() -> None:
    deadline = getattr(_state, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise RenderBudgetExceeded("the template ran past its time limit")


def _too_long(n: int, what: str, limit: int = MAX_STRING) -> None:
    if n > limit:
        raise RenderBudgetExceeded(f"{what} would produce {n} characters, over the {limit} limit")


def _size(x: Any) -> int | None:
    return len(x) if isinstance(x, str | bytes | list | tuple) else None


_PERCENT_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_WIDTH = re.compile(r"\{[^{}]*:[^{}]*?(\d+)[^{}]*\}")


def _check_format_widths(fmt: str, limit: int = MAX_STRING) -> None:
    for width, precision in _PERCENT_WIDTH.findall(fmt):
        for n in (width, precision):
            if n == "*" or (n and int(n) > limit):
                raise RenderBudgetExceeded("a format width over the limit")
    for n in _FORMAT_WIDTH.findall(fmt):
        if int(n) > limit:
            raise RenderBudgetExceeded("a format width over the limit")


def _check_str_method(name: str, s: str, args: tuple, kwargs: dict, limit: int = MAX_STRING) -> None:
    values = list(args) + list(kwargs.values())
    if name in ("ljust", "rjust", "center", "zfill") and values and isinstance(values[0], int):
        _too_long(values[0], f"str.{name}", limit)
    elif name == "expandtabs":
        tab = values[0] if values and isinstance(values[0], int) else 8
        _too_long(s.count("\t") * tab + len(s), "str.expandtabs", limit)
    elif name == "replace" and len(values) >= 2 and isinstance(values[1], str):
        old = values[0] if isinstance(values[0], str) else ""
        _too_long(len(s) + (s.count(old) if old else len(s) + 1) * len(values[1]), "str.replace", limit)
    elif name in ("format", "format_map"):
        _check_format_widths(s, limit)


def _bounded_join(items: Iterable[Any], sep: str, limit: int = MAX_STRING) -> None:
    total = 0
    for item in items:
        total += len(str(item)) + len(sep)
        _too_long(total, "join", limit)


class _Budget:
    """The checks, mixed into a Jinja sandbox (mutable or immutable)."""

    intercepted_binops = frozenset({"*", "+", "**", "%"})
    max_string = MAX_STRING

    def _install_budget(self, max_string: int) -> None:
        self.max_string = limit = max_string
        self.globals["range"] = _budgeted_range
        f = self.filters  # type: ignore[attr-defined]
        for name, check in (("center", lambda s, width=80, *a, **k: _too_long(int(width), "center", limit)),
                            ("indent", lambda s, width=4, *a, **k: _too_long(
                                len(str(s)) * (1 + int(width) if isinstance(width, int) else 1 + len(str(width))),
                                "indent", limit)),
                            ("format", lambda s, *a, **k: _check_format_widths(str(s), limit)),
                            ("replace", lambda s, old, new, *a, **k: _check_str_method(
                                "replace", str(s), (str(old), str(new)), {}, limit)),
                            ("wordwrap", lambda s, width=79, *a, **k: _too_long(len(str(s)) * 2, "wordwrap", limit)),
                            ("join", lambda items, d="", *a, **k: _bounded_join(
                                list(items) if not isinstance(items, str) else [items], str(d), limit))):
            f[name] = _guarded(f[name], check)

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        _check_deadline()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if _size(seq) is not None and isinstance(n, int):
                    _too_long(_size(seq) * n, "'*'", self.max_string)
        elif operator == "+" and _size(left) is not None and _size(right) is not None:
            _too_long(_size(left) + _size(right), "'+'", self.max_string)
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
            if right * math.log2(abs(left)) > MAX_INT_BITS:
                raise RenderBudgetExceeded(f"'**' would produce an integer over {MAX_INT_BITS} bits")
        elif operator == "%" and isinstance(left, str):
            _check_format_widths(left, self.max_string)
        return super().call_binop(context, operator, left, right)  # type: ignore[misc]

    def call(__self, __context, __obj, *args, **kwargs):
        _check_deadline()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            _check_str_method(getattr(__obj, "__name__", ""), owner, args, kwargs, __self.max_string)
        return super().call(__context, __obj, *args, **kwargs)  # type: ignore[misc]

    def getattr(self, obj: Any, attribute: str) -> Any:
        _check_deadline()
        if isinstance(obj, str) and attribute in ("format", "format_map"):
            _check_format_widths(obj, self.max_string)  # the sandbox wraps it: no bound method
        return super().getattr(obj, attribute)  # type: ignore[misc]


def _guarded(fn: Callable, check: Callable) -> Callable:
    """`fn` with `check` (deadline, sizes) before it; keeps Jinja's pass_* marker, whose extra
    first argument (environment or eval context) the check does not see."""
    marked = hasattr(fn, "jinja_pass_arg")

    def run(*args, **kwargs):
        _check_deadline()
        check(*(args[1:] if marked else args), **kwargs)
        return fn(*args, **kwargs)

    if marked:
        run.jinja_pass_arg = fn.jinja_pass_arg  # type: ignore[attr-defined]
    return run


def _budgeted_range(*args: int) -> range:
    _check_deadline()
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise RenderBudgetExceeded(f"range() of {len(r)} items, over the {MAX_RANGE} limit")
    return r


class BudgetedEnvironment(_Budget, SandboxedEnvironment):
    def __init__(self, *, max_string: int = MAX_STRING, **options: Any) -> None:
        super().__init__(**options)
        self._install_budget(max_string)


class ImmutableBudgetedEnvironment(_Budget, ImmutableSandboxedEnvironment):
    def __init__(self, *, max_string: int = MAX_STRING, **options: Any) -> None:
        super().__init__(**options)
        self._install_budget(max_string)


def render_sync(template: Template, values: dict[str, Any], *, timeout_s: float, max_output: int) -> str:
    """Render on this thread under the budget (the caller picks the thread)."""
    _state.deadline = time.monotonic() + timeout_s
    try:
        out, size = [], 0
        for chunk in template.generate(**values):
            size += len(chunk)
            if size > max_output:
                raise RenderBudgetExceeded(f"the template's output is longer than {max_output} characters")
            out.append(chunk)
            _check_deadline()
        return "".join(out)
    finally:
        _state.deadline = None


# Renders get their own small pool: a render stuck in one C call past its deadline holds a
# worker, never the loop's default executor that everything else shares.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="jinja-render")


async def render(template: Template, values: dict[str, Any], *, timeout_s: float = 2.0,
                 max_output: int = 400_000) -> str:
    """Render off the event loop, under the budget; RenderBudgetExceeded past it."""
    loop = asyncio.get_running_loop()
    lock, running = threading.Lock(), {}

    def work() -> str:
        with lock:
            running["thread"] = threading.get_ident()
        try:
            return render_sync(template, values, timeout_s=timeout_s, max_output=max_output)
        finally:
            with lock:  # from here on this worker may take another render: never interrupt it
                running.pop("thread", None)

    future = loop.run_in_executor(_POOL, work)
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout_s + 0.5)
    except TimeoutError:
        with lock:  # interrupt the pure-Python work that missed every check, if still in it
            if "thread" in running:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(running["thread"]),
                                                           ctypes.py_object(RenderBudgetExceeded))
        try:
            return await asyncio.wait_for(future, 1.0)
        except TimeoutError:
            raise RenderBudgetExceeded("the template ran past its time limit") from None
