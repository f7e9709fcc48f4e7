"""template-transform: Jinja2 in `jinja2.sandbox.SandboxedEnvironment`.

The sandbox refuses unsafe attribute access (no `__class__.__mro__` escapes) and caps
`range`; rendering runs in a worker thread so a heavy template never stalls the event
loop (heartbeats, other runs). Compiled templates are cached by source.
"""

from __future__ import annotations

import asyncio
import functools

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from loom_common.dsl.flow_nodes import TemplateTransformData
from loom_orchestrator.engine.context import NodeContext, NodeResult

MAX_OUTPUT = 400_000  # characters, as Dify
_ENV = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True)
INLINE_LIMIT = 256  # short templates render inline: a thread hop costs more than they do


@functools.lru_cache(maxsize=512)
def _compile(source: str):
    return _ENV.from_string(source)


class TemplateTransformNode:
    type, version, pure = "template-transform", "1", True

    async def run(self, data: TemplateTransformData, ctx: NodeContext) -> NodeResult:
        values = {v.variable: ctx.pool.get(v.value_selector) for v in data.variables}
        try:
            template = _compile(data.template)
            if len(data.template) <= INLINE_LIMIT and "for" not in data.template:
                text = template.render(**values)
            else:
                text = await asyncio.to_thread(template.render, **values)
        except TemplateError as exc:
            raise ValueError(f"template: {exc}") from None
        if len(text) > MAX_OUTPUT:
            raise ValueError(f"template output is longer than {MAX_OUTPUT} characters")
        return NodeResult(outputs={"output": text}, inputs=values)
