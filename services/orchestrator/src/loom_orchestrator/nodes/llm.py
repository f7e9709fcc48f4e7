"""llm: prompt messages with references, optional context and memory, structured output
under a JSON schema (constrained decoding by inference), the run's files with `vision`
(llm_files.py: text inlined, images to a vision-capable model); streams when planned."""

from __future__ import annotations

from loom_common.dsl.ai_nodes import LLMData
from loom_common.errors import PermanentError
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node, Traits
from loom_orchestrator.engine.ports import ChatMessage
from loom_orchestrator.engine.variables import to_text
from loom_orchestrator.nodes import llm_files, modeling


def _context_text(value) -> str:
    if isinstance(value, list):  # knowledge-retrieval results
        return "\n".join(str(v.get("content", "")) if isinstance(v, dict) else to_text(v) for v in value)
    return to_text(value)


class LLMNode(Node[LLMData]):
    type, version = "llm", "1"
    traits = Traits(calls_model=True, streams=True)

    async def run(self, data: LLMData, ctx: NodeContext) -> NodeResult:
        pool = ctx.pool
        context = ""
        if data.context.enabled and data.context.variable_selector:
            context = _context_text(pool.get(data.context.variable_selector))
        pool_text = pool.render
        system = [ChatMessage("system", pool_text(m.text).replace("{{#context#}}", context))
                  for m in data.prompt_template if m.role == "system"]
        rest = [ChatMessage(m.role, pool_text(m.text).replace("{{#context#}}", context))
                for m in data.prompt_template if m.role != "system"]
        messages = system + modeling.history(data.memory, ctx.services.history) + rest
        if data.memory is not None and data.memory.query_prompt_template:
            query = pool_text(data.memory.query_prompt_template)
            if query and not any(m.role == "user" and query in m.content for m in rest):
                messages.append(ChatMessage("user", query))
        files = llm_files.Attached()
        if data.vision.enabled:
            files = await llm_files.gather(ctx, data.vision.configs.variable_selector)
            llm_files.attach(messages, files)
        if not messages:
            raise ValueError("prompt_template: the prompt is empty")
        schema = data.structured_output.schema_ if data.structured_output_enabled and data.structured_output else None
        req = modeling.request(ctx, data.model, messages, json_schema=schema)
        try:
            done = await modeling.complete(ctx, req, stream=schema is None)
        except PermanentError as exc:
            refused = llm_files.refusal(exc, messages, data.model.name) if files.images else None
            if refused is None:
                raise
            raise refused from None
        outputs = {"text": done.text, "usage": done.usage(), "finish_reason": done.finish_reason}
        if schema is not None:
            outputs["structured_output"] = modeling.parse_json(done.text)
        return NodeResult(outputs=outputs, inputs={"files": files.names} if files.names else {},
                          prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens,
                          process_data={"model_mode": data.model.mode, "model_name": data.model.name,
                                        "model_served": done.model, "prompts": modeling.prompts(messages)})
