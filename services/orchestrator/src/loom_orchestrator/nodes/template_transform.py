"""template-transform: Jinja2 under `loom_common.templating`'s budget.

The sandbox refuses unsafe attribute access (no `__class__.__mro__` escapes); the budget
refuses operations whose result would be huge (`'a' * 50000000`), caps range(), output and
time. A template with statements (loops, macros, set) renders in a worker thread under a time
limit, so a heavy one never stalls the event loop (heartbeats, other runs); a short
expression-only template renders inline, since its every operation is size-checked and a
thread hop costs more than it does. Compiled templates are cached by source.
"""

from __future__ import annotations

import functools

from jinja2 import StrictUndefined, TemplateError

from loom_common import templating
from loom_common.dsl.flow_nodes import TemplateTransformData
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node, Traits

MAX_OUTPUT = 400_000  # characters, as Dify
RENDER_TIMEOUT_S = 5.0
_ENV = templating.BudgetedEnvironment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True)
INLINE_LIMIT = 256  # short expression-only templates render inline


@functools.lru_cache(maxsize=512)
def _compile(source: str):
    return _ENV.from_string(source)


class TemplateTransformNode(Node[TemplateTransformData]):
    type, version = "template-transform", "1"
    traits = Traits(pure=True)

    async def run(self, data: TemplateTransformData, ctx: NodeContext) -> NodeResult:
        values = {v.variable: ctx.pool.get(v.value_selector) for v in data.variables}
        try:
            template = _compile(data.template)
            if len(data.template) <= INLINE_LIMIT and "{%" not in data.template:
                text = templating.render_sync(template, values, timeout_s=RENDER_TIMEOUT_S, max_output=MAX_OUTPUT)
            else:
                text = await templating.render(template, values, timeout_s=RENDER_TIMEOUT_S, max_output=MAX_OUTPUT)
        except TemplateError as exc:
            raise ValueError(f"template: {exc}") from None
        return NodeResult(outputs={"output": text}, inputs=values)
