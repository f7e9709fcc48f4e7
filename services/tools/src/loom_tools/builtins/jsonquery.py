"""JSON query with JMESPath."""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from loom_tools.domain.types import ToolSpec
from loom_tools.errors import InvalidArguments


def query(args: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"result": jmespath.search(args["expression"], args["data"])}
    except JMESPathError as exc:
        raise InvalidArguments(f"argument 'expression': {exc}", field="expression") from exc


TOOLS = [
    (ToolSpec("json.query", "Query JSON data with a JMESPath expression, e.g. 'items[?price > `10`].name'.",
              "builtin",
              {"type": "object", "properties": {"data": {}, "expression": {"type": "string", "maxLength": 2000}},
               "required": ["data", "expression"], "additionalProperties": False}),
     query),
]
