"""answer: renders its template and streams it to the client as `message` events.

When the model node it starts with already streamed its tokens live (see the engine's
streaming plan), only the rest of the template is sent now.
"""

from __future__ import annotations

from loom_common.dsl.flow_nodes import AnswerData
from loom_common.dsl.references import segments
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node, Traits
from loom_orchestrator.engine.variables import to_text


class AnswerNode(Node[AnswerData]):
    type, version = "answer", "1"
    traits = Traits(pure=True)

    async def run(self, data: AnswerData, ctx: NodeContext) -> NodeResult:
        segs = segments(data.answer)
        parts = [s.text if s.selector is None else to_text(ctx.pool.get(s.selector)) for s in segs]
        skip = 1 if segs and segs[0].selector and ctx.streamed(segs[0].selector[0]) else 0
        ctx.say("".join(parts[skip:]))
        answer = "".join(parts)
        return NodeResult(outputs={"answer": answer}, answer=answer)

    def shows_first(self, data: AnswerData) -> tuple[str, ...] | None:
        segs = segments(data.answer)
        return tuple(segs[0].selector) if segs and segs[0].selector else None
