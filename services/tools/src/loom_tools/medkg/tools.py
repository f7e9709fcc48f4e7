"""The `medkg.*` built-in tools (every tenant has them, nothing to register) and their runner.
The graph is read once per process: only migrations write it."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from loom_tools.domain.types import ToolSpec
from loom_tools.medkg import check, labs, review
from loom_tools.medkg.graph import Graph, load

# A patient's conditions or medications: free text ("asthma, stomach ulcer") or a list of names.
_NAMES = {"anyOf": [{"type": "string", "maxLength": 4000},
                    {"type": "array", "maxItems": 50, "items": {"type": "string", "maxLength": 200}}]}
_TEXT = {"type": "string", "maxLength": 20_000}
_REPORT = {"anyOf": [_TEXT, {"type": "array", "maxItems": 20, "items": _TEXT}]}

LOOKUP = ToolSpec(
    "medkg.lookup", "Look up drugs, drug classes and conditions named in a text in the sample medical knowledge "
    "graph: classes, contraindications, interactions.", "medkg",
    # `names` has no maxLength: the agent offers this tool to the model, whose arguments are
    # decoded under the schema as a llama.cpp grammar, and a maxLength of thousands unrolls into
    # a grammar too deep to compile. The text is bounded by the call's size and cut at MAX_TEXT.
    {"type": "object", "additionalProperties": False, "required": ["names"],
     "properties": {"names": {"type": "string"}}},
    {"builtin": True})
CHECK = ToolSpec(
    "medkg.check", "Check the drugs a draft answer proposes against the patient's conditions and medications; "
    "answers the draft without the blocked drugs and the reasons.", "medkg",
    {"type": "object", "additionalProperties": False, "required": ["draft"], "properties": {
        "draft": _TEXT, "drugs": _NAMES, "conditions": _NAMES, "medications": _NAMES}},
    {"builtin": True})
LABS = ToolSpec(
    "medkg.labs", "Read lab values from a report's text and flag those outside the reference ranges.", "medkg",
    {"type": "object", "additionalProperties": False, "required": ["text"], "properties": {"text": _REPORT}},
    {"builtin": True})
REVIEW = ToolSpec(
    "medkg.review", "Compliance review of a draft medical answer: no definitive diagnosis, a disclaimer, "
    "escalation advice for red-flag symptoms; answers the verdict (pass, rewritten, blocked) and the text.",
    "medkg",
    {"type": "object", "additionalProperties": False, "required": ["question", "draft"], "properties": {
        "question": _TEXT, "draft": _TEXT, "conditions": _NAMES}},
    {"builtin": True})
SPECS = (LOOKUP, CHECK, LABS, REVIEW)


class MedkgRunner:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._graph: Graph | None = None
        self._lock = asyncio.Lock()

    async def graph(self) -> Graph:
        async with self._lock:
            if self._graph is None:
                self._graph = await load(self._pool)
            return self._graph

    async def run(self, spec: ToolSpec, args: dict[str, Any], timeout_s: float) -> Any:
        g = await self.graph()
        if spec.name == LOOKUP.name:
            found = g.find(args["names"], "drug", "drug_class", "condition")
            return {"entities": [g.describe(e) for e in found]}
        if spec.name == CHECK.name:
            return check.check(g, draft=args["draft"], drugs=args.get("drugs"), conditions=args.get("conditions"),
                               medications=args.get("medications"))
        if spec.name == LABS.name:
            return labs.read(g, args["text"])
        return review.review(g, question=args["question"], draft=args["draft"],
                             known=check.as_text(args.get("conditions")))
