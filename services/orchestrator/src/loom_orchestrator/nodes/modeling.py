"""Calling the model, shared by llm, question-classifier, parameter-extractor and agent:
conversation memory (window + token budget), the request, and collecting a token stream.

Tokens are estimated (UTF-8 bytes / 4, rounded up): the orchestrator has no tokenizer for
every model the router may pick, and an estimate that errs long keeps a prompt inside the
budget. Memory keeps the newest turns: at most `window.size`, then drops the oldest until
the history fits `max_tokens`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from loom_common.dsl.ai_nodes import Memory, ModelConfig
from loom_orchestrator.engine.context import NodeContext, Turn
from loom_orchestrator.engine.ports import ChatMessage, ModelRequest, ToolCall, ToolSchema

_PARAMS = ("temperature", "top_p", "top_k", "max_tokens", "stop", "seed", "repeat_penalty")


def estimate_tokens(text: str) -> int:
    return (len(text.encode()) + 3) // 4


def history(memory: Memory | None, turns: list[Turn]) -> list[ChatMessage]:
    if memory is None or not turns:
        return []
    window = turns[-memory.window.size:] if memory.window.enabled else list(turns)
    kept: list[Turn] = []
    budget = memory.max_tokens
    for turn in reversed(window):
        cost = estimate_tokens(turn.query) + estimate_tokens(turn.answer)
        if cost > budget:
            break
        budget -= cost
        kept.append(turn)
    out: list[ChatMessage] = []
    for turn in reversed(kept):
        out += [ChatMessage("user", turn.query), ChatMessage("assistant", turn.answer)]
    return out


def request(ctx: NodeContext, model: ModelConfig, messages: list[ChatMessage], *,
            json_schema: dict[str, Any] | None = None, tools: list[ToolSchema] | None = None,
            tool_choice: str = "", defaults: dict[str, Any] | None = None) -> ModelRequest:
    params = {**(defaults or {}), **{k: v for k, v in model.completion_params.items() if k in _PARAMS}}
    return ModelRequest(model=model.name, messages=messages, params=params, json_schema=json_schema,
                        tools=tools or [], tool_choice=tool_choice, request_id=ctx.run.execution_id(ctx.key),
                        tenant_id=ctx.run.tenant_id, run_id=ctx.run.run_id)


@dataclass
class Completion:
    text: str = ""
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: list[ToolCall] = field(default_factory=list)
    model: str = ""

    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


async def complete(ctx: NodeContext, req: ModelRequest, *, stream: bool = False) -> Completion:
    """Run one Generate; with `stream`, each piece goes to the client as it arrives."""
    if ctx.services.model is None:
        raise RuntimeError("no inference service configured")
    out = Completion()
    parts: list[str] = []
    async for chunk in ctx.services.model.generate(req):
        if chunk.text:
            parts.append(chunk.text)
            if stream:
                ctx.stream(chunk.text)
        if chunk.finish_reason:
            out.finish_reason = chunk.finish_reason
            out.prompt_tokens, out.completion_tokens = chunk.prompt_tokens, chunk.completion_tokens
            out.tool_calls, out.model = chunk.tool_calls, chunk.model
    out.text = "".join(parts)
    if out.finish_reason == "error":
        raise RuntimeError("the model stopped with an error")
    return out


def prompts(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """The prompt as recorded in process_data (Dify's `process_data.prompts`)."""
    return [{"role": m.role, "text": m.content, **({"tool_calls": [c.__dict__ for c in m.tool_calls]}
                                                   if m.tool_calls else {}),
             **({"files": [i.name for i in m.images]} if m.images else {})} for m in messages]


def parse_json(text: str) -> Any:
    """The model's JSON output (produced under a schema, so it parses unless cut by max_tokens)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            try:
                return json.loads(text[start:end + 1])
            except json.JSONDecodeError:
                pass
    raise ValueError(f"the model's output is not JSON: {text[:200]!r}")
