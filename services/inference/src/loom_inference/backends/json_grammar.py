"""What Loom changes around llama-cpp-python's JSON-schema -> GBNF converter (llamacpp.py runs
it): strings made strict JSON, and bounds too large to unroll left to the receiver."""

from __future__ import annotations

import json
from typing import Any

# The converter lets a JSON string hold raw control characters (`[^"\\]`), which JSON forbids:
# a model that emits a newline inside a string would produce unparseable output.
_LAX_CHAR = 'char ::= [^"\\\\]'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F]'

# The converter unrolls a length bound into one nested optional group per unit (`maxLength:
# 4000` is 4000 nested groups), and llama.cpp refuses such a grammar ("exceeds sane defaults"):
# an agent offered a tool with a long text field could then not call any tool. Bounds above
# these stay out of the grammar; whoever receives the value still checks it against the full
# schema (the tools service validates arguments), so only the guarantee of parsing comes from here.
_BOUNDS = {"minLength": 256, "maxLength": 256, "minItems": 64, "maxItems": 64}


def strict_strings(gbnf: str) -> str:
    return gbnf.replace(_LAX_CHAR, _JSON_CHAR)


def unrollable(schema_json: str) -> str:
    """The schema without length or item bounds too large to unroll."""
    return json.dumps(_without_large_bounds(json.loads(schema_json)))


def _without_large_bounds(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_large_bounds(v) for v in node]
    if not isinstance(node, dict):
        return node
    return {k: _without_large_bounds(v) for k, v in node.items()
            if not (k in _BOUNDS and isinstance(v, int) and v > _BOUNDS[k])}
