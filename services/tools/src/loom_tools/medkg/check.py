"""The contraindication check every proposed medication must pass before an answer goes out.

The drugs a draft proposes are the graph's drugs it names, less those the patient already
takes. Each is checked, through itself and its classes, against the patient's conditions
(`contraindicated_in`) and against the patient's medications and the other proposed drugs
(`interacts_with`, read both ways). An absolute contraindication or a contraindicated/major
interaction blocks the drug: every sentence of the draft naming it is removed and the reason
is added instead. A relative contraindication or a moderate interaction is kept as a caution.
"""

from __future__ import annotations

import re
from typing import Any

from loom_tools.medkg.graph import Entity, Graph

BLOCKING = {"absolute", "contraindicated", "major"}
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def as_text(value: str | list[str] | None) -> str:
    return "\n".join(value) if isinstance(value, list) else (value or "")


def check(graph: Graph, *, draft: str, drugs: list[str] | str | None, conditions: list[str] | str | None,
          medications: list[str] | str | None) -> dict[str, Any]:
    patient_conditions = graph.find(as_text(conditions), "condition")
    taking = graph.find(as_text(medications), "drug")
    named = graph.find(f"{draft}\n{as_text(drugs)}", "drug")
    proposed = [d for d in named if d not in taking]
    blocked: list[dict[str, Any]] = []
    cautions: list[dict[str, Any]] = []
    for drug in proposed:
        ids = {drug.id, *graph.classes(drug.id)}
        for r in graph.related(ids, "contraindicated_in"):
            if r.object in {c.id for c in patient_conditions}:
                finding = _finding(graph, drug, "contraindicated_in", r.object, r.severity, r.reason)
                (blocked if r.severity in BLOCKING else cautions).append(finding)
        others = {o.id: o for o in (*taking, *proposed) if o.id != drug.id}
        for r, other_end in graph.interactions(ids):
            for other in others.values():
                if other_end in {other.id, *graph.classes(other.id)}:
                    finding = _finding(graph, drug, "interacts_with", other.id, r.severity, r.reason)
                    (blocked if r.severity in BLOCKING else cautions).append(finding)
    blocked_ids = {b["id"] for b in blocked}
    return {
        "proposed": [d.name for d in proposed],
        "conditions": [c.name for c in patient_conditions],
        "medications": [m.name for m in taking],
        "allowed": [d.name for d in proposed if d.id not in blocked_ids],
        "blocked": blocked,
        "cautions": cautions,
        "text": _without(graph, draft, blocked),
        "summary": "; ".join(f"{b['drug']} blocked: {b['why']}" for b in blocked),
    }


def _finding(graph: Graph, drug: Entity, relation: str, other_id: str, severity: str, reason: str) -> dict[str, Any]:
    other = graph.entities[other_id].name
    why = (f"contraindicated with {other} ({reason})" if relation == "contraindicated_in"
           else f"interacts with {other} ({reason})")
    return {"id": drug.id, "drug": drug.name, "relation": relation, "with": other, "severity": severity,
            "reason": reason, "why": why}


def _without(graph: Graph, draft: str, blocked: list[dict[str, Any]]) -> str:
    """The draft less every sentence that names a blocked drug, with the reasons appended."""
    if not blocked:
        return draft
    ids = {b["id"] for b in blocked}
    lines = []
    for line in draft.splitlines():
        kept = [s for s in _SENTENCE.split(line) if not any(graph.mentions(s, i) for i in ids)]
        if kept or not line.strip():
            lines.append(" ".join(kept))
    seen: dict[str, str] = {}
    for b in blocked:
        seen.setdefault(b["drug"], b["why"])
    note = "\n".join(f"- {drug} is not suitable here: {why}." for drug, why in seen.items())
    body = "\n".join(lines).strip()
    return f"{body}\n\nRemoved by the contraindication check:\n{note}".strip()
