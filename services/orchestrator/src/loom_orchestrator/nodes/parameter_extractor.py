"""parameter-extractor: the model fills the declared parameters under a JSON schema built
from them (constrained decoding), so the output always parses and has the right types."""

from __future__ import annotations

from typing import Any

from loom_common.dsl.ai_nodes import ExtractParameter, ParameterExtractorData
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node, Traits
from loom_orchestrator.engine.ports import ChatMessage
from loom_orchestrator.engine.variables import to_text
from loom_orchestrator.nodes import modeling

_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"}, "number": {"type": "number"}, "bool": {"type": "boolean"},
    "boolean": {"type": "boolean"}, "array[string]": {"type": "array", "items": {"type": "string"}},
    "array[number]": {"type": "array", "items": {"type": "number"}},
    "array[bool]": {"type": "array", "items": {"type": "boolean"}},
    "array[object]": {"type": "array", "items": {"type": "object"}},
}


def schema_of(params: list[ExtractParameter]) -> dict[str, Any]:
    props = {}
    for p in params:
        prop = {"enum": p.options} if p.type == "select" and p.options else dict(_TYPES.get(p.type, {"type": "string"}))
        if p.description:
            prop["description"] = p.description
        props[p.name] = prop
    return {"type": "object", "properties": props, "required": [p.name for p in params if p.required],
            "additionalProperties": False}


class ParameterExtractorNode(Node[ParameterExtractorData]):
    type, version = "parameter-extractor", "1"
    traits = Traits(calls_model=True)

    async def run(self, data: ParameterExtractorData, ctx: NodeContext) -> NodeResult:
        query = to_text(ctx.pool.get(data.query))
        schema = schema_of(data.parameters)
        system = "Extract the parameters from the user's input as JSON matching this schema:\n" + str(schema)
        if data.instruction:
            system += "\n" + ctx.pool.render(data.instruction)
        messages = [ChatMessage("system", system), *modeling.history(data.memory, ctx.services.history),
                    ChatMessage("user", query)]
        req = modeling.request(ctx, data.model, messages, json_schema=schema, defaults={"max_tokens": 256})
        done = await modeling.complete(ctx, req)
        outputs: dict[str, Any] = {p.name: None for p in data.parameters}
        try:
            parsed = modeling.parse_json(done.text)
            outputs.update({k: v for k, v in parsed.items() if k in outputs})
            outputs["__is_success"], outputs["__reason"] = 1, None
        except (ValueError, AttributeError) as exc:
            outputs["__is_success"], outputs["__reason"] = 0, str(exc)
        outputs["usage"] = done.usage()
        return NodeResult(inputs={"query": query}, outputs=outputs, prompt_tokens=done.prompt_tokens,
                          completion_tokens=done.completion_tokens,
                          process_data={"prompts": modeling.prompts(messages), "schema": schema})
