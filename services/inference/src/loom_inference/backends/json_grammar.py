"""What Loom changes around llama-cpp-python's JSON-schema -> GBNF converter (llamacpp.py runs
it): strings made strict JSON, and bounds too large to unroll left to the receiver."""

from __future__ import annotations

import json
import math
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


# The converter ignores an integer's minimum and maximum (a TODO of its own): the bundled model
# answered `price_level: 1000` for a 1..4 field. A small range becomes the enum of its values,
# which the converter does enforce; a wider or one-sided range is left to the receiver.
_MAX_ENUMERATED_RANGE = 256


def unrollable(schema_json: str) -> str:
    """The schema as the converter can enforce it: no bounds too large to unroll, small integer
    ranges as enums."""
    return json.dumps(_grammar_ready(json.loads(schema_json)))


def _grammar_ready(node: Any) -> Any:
    if isinstance(node, list):
        return [_grammar_ready(v) for v in node]
    if not isinstance(node, dict):
        return node
    if (values := _integer_range(node)) is not None:
        return {"enum": values}
    return {k: _grammar_ready(v) for k, v in node.items()
            if not (k in _BOUNDS and isinstance(v, int) and v > _BOUNDS[k])}


def _integer_range(node: dict) -> list[int] | None:
    if node.get("type") != "integer" or any(k in node for k in ("enum", "const", "multipleOf")):
        return None
    low = _bound(node, "minimum", "exclusiveMinimum", 1)
    high = _bound(node, "maximum", "exclusiveMaximum", -1)
    if low is None or high is None or not 0 <= high - low < _MAX_ENUMERATED_RANGE:
        return None
    return list(range(low, high + 1))


def _bound(node: dict, inclusive: str, exclusive: str, step: int) -> int | None:
    """The tightest integer bound of one side, or None when that side is open."""
    found = []
    if isinstance(node.get(inclusive), int | float) and not isinstance(node.get(inclusive), bool):
        found.append(math.ceil(node[inclusive]) if step > 0 else math.floor(node[inclusive]))
    if isinstance(node.get(exclusive), int | float) and not isinstance(node.get(exclusive), bool):
        edge = node[exclusive]
        found.append(math.floor(edge) + 1 if step > 0 else math.ceil(edge) - 1)
    if not found:
        return None
    return max(found) if step > 0 else min(found)
