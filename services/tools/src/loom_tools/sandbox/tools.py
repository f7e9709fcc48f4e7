"""The built-in code tools (the orchestrator's code node calls `code.python`)."""

from __future__ import annotations

from loom_tools.domain.types import ToolSpec

_PARAMS = {"type": "object", "properties": {
    "code": {"type": "string", "minLength": 1, "maxLength": 200_000},
    "inputs": {"type": "object"}}, "required": ["code"], "additionalProperties": False}

PYTHON = ToolSpec("code.python", "Run Python code that defines main(**inputs) returning a JSON object, "
                  "in a sandbox without network or filesystem access.", "code", _PARAMS,
                  {"language": "python", "builtin": True})
JAVASCRIPT = ToolSpec("code.javascript", "Run JavaScript code that defines function main(inputs) returning "
                      "an object, in a sandbox without network or filesystem access.", "code", _PARAMS,
                      {"language": "javascript", "builtin": True})
