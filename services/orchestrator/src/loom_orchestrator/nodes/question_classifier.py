"""question-classifier: the model picks one class id under a JSON-schema constraint (so its
answer always names a real class); the edge handle is that class id."""

from __future__ import annotations

from loom_common.dsl.ai_nodes import QuestionClassifierData
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node, Traits
from loom_orchestrator.engine.ports import ChatMessage
from loom_orchestrator.engine.variables import to_text
from loom_orchestrator.nodes import modeling


class QuestionClassifierNode(Node[QuestionClassifierData]):
    type, version = "question-classifier", "1"
    traits = Traits(calls_model=True)

    async def run(self, data: QuestionClassifierData, ctx: NodeContext) -> NodeResult:
        query = to_text(ctx.pool.get(data.query_variable_selector))
        listing = "\n".join(f"- {c.id}: {c.name}" for c in data.classes)
        system = ("Classify the user's input into exactly one category. Answer with JSON "
                  f'{{"category_id": ...}}.\nCategories:\n{listing}')
        if data.instruction:
            system += "\nInstructions: " + ctx.pool.render(data.instruction)
        messages = [ChatMessage("system", system), *modeling.history(data.memory, ctx.services.history),
                    ChatMessage("user", query)]
        schema = {"type": "object", "properties": {"category_id": {"enum": [c.id for c in data.classes]}},
                  "required": ["category_id"], "additionalProperties": False}
        req = modeling.request(ctx, data.model, messages, json_schema=schema, defaults={"max_tokens": 64})
        done = await modeling.complete(ctx, req)
        try:
            chosen = modeling.parse_json(done.text).get("category_id")
        except (ValueError, AttributeError):
            chosen = None
        cls = next((c for c in data.classes if c.id == chosen), data.classes[0])  # unparsable: first class
        return NodeResult(inputs={"query": query}, edge_handle=cls.id,
                          outputs={"class_name": cls.name, "class_id": cls.id, "usage": done.usage()},
                          process_data={"prompts": modeling.prompts(messages), "model_output": done.text},
                          prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens)
