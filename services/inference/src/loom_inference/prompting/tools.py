"""Tool calls under constrained decoding.

With tools, the model answers with one JSON object that a grammar forces to be either a call
`{"name": <one of the tools>, "arguments": <that tool's parameter schema>}` or, when the
choice is `auto`, a plain answer `{"content": "..."}`. Arguments therefore always parse and
match their schema, even from a 270M base model.
"""

from __future__ import annotations

import json

from loom_common.ids import new_id
from loom_inference.engine.types import ChatMessage, GenerateRequest, InvalidRequest, ToolCall, ToolSpec


def _call_schema(tool: ToolSpec) -> dict:
    params = tool.parameters or {"type": "object", "properties": {}}
    return {"type": "object", "properties": {"name": {"const": tool.name}, "arguments": params},
            "required": ["name", "arguments"], "additionalProperties": False}


def tool_schema(tools: list[ToolSpec], choice: str) -> dict | None:
    """The JSON schema the output must match, or None when tools must not constrain it."""
    if not tools or choice == "none":
        return None
    if choice not in ("", "auto", "required"):
        named = [t for t in tools if t.name == choice]
        if not named:
            raise InvalidRequest(f"unknown tool {choice!r}", "tool_choice")
        return _call_schema(named[0])
    calls = [_call_schema(t) for t in tools]
    if choice == "required":
        return calls[0] if len(calls) == 1 else {"anyOf": calls}
    answer = {"type": "object", "properties": {"content": {"type": "string"}}, "required": ["content"],
              "additionalProperties": False}
    return {"anyOf": [*calls, answer]}


def constrain(req: GenerateRequest) -> tuple[list[ChatMessage], str, bool]:
    """For a backend that constrains output itself: (messages, with the tools paragraph first when
    tools shape the output; the JSON schema text the output must match, "" = free text; whether
    the output is the tool envelope that `tool_output.read_tool_output` must take off)."""
    schema = tool_schema(req.tools, req.tool_choice) if req.tools else None
    if schema is None:
        return list(req.messages), req.json_schema, False
    return [ChatMessage(role="system", content=tool_prompt(req.tools)), *req.messages], json.dumps(schema), True


def tool_prompt(tools: list[ToolSpec]) -> str:
    """A system-prompt paragraph describing the tools (the grammar does the enforcing)."""
    lines = ["You can call these tools. Answer with one JSON object "
             '{"name": <tool>, "arguments": {...}} to call one, or {"content": <text>} to reply.']
    for t in tools:
        lines.append(f"- {t.name}: {t.description} parameters: {json.dumps(t.parameters or {})}")
    return "\n".join(lines)


def parse_tool_output(text: str) -> tuple[list[ToolCall], str]:
    """(tool calls, plain content) from the constrained output."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return [], text
    if isinstance(obj, dict) and "name" in obj and "arguments" in obj:
        return [ToolCall(id="call_" + new_id().replace("-", "")[-24:], name=str(obj["name"]),
                         arguments_json=json.dumps(obj["arguments"]))], ""
    if isinstance(obj, dict) and "content" in obj:
        return [], str(obj["content"])
    return [], text
