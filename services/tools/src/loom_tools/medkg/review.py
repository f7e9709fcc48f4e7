"""The compliance review of a draft medical answer. Rules, in order:

1. Red-flag symptoms (the graph's red_flag entities) in the question need escalation advice:
   when the draft has none, the red flag's advice is put first (rewritten).
2. No definitive diagnosis: a sentence that claims the patient has a condition ("you have ...",
   "the diagnosis is ...") and names one of the graph's conditions the patient did not report
   themselves, or says it with certainty,
   blocks the draft; a fixed answer that sends the patient to a clinician replaces it.
3. A disclaimer: added at the end when the draft has none (rewritten).

The verdict is `pass`, `rewritten` or `blocked`; `findings` name each rule that fired.
"""

from __future__ import annotations

import re
from typing import Any

from loom_tools.medkg.graph import MAX_TEXT, Graph

DISCLAIMER = ("This is general information, not medical advice, and not a substitute for a consultation "
              "with a doctor or pharmacist.")
BLOCKED = ("I can't tell you which condition you have: only a clinician who can examine you can make a "
           "diagnosis. Please see your doctor about these symptoms.")
_CLAIM = re.compile(r"\b(?:you (?:\w+ly )?(?:have|'ve got|are suffering from|suffer from)|"
                    r"(?:the|your) diagnosis is|you are diagnosed with|I (?:can )?(?:confirm|diagnose)|"
                    r"this is (?:definitely|certainly|clearly))\b", re.IGNORECASE)
_CERTAIN = re.compile(r"\b(?:definitely|certainly|clearly|without (?:a )?doubt|for sure|surely)\b", re.IGNORECASE)
_DISCLAIMER = re.compile(r"not (?:a substitute for|medical advice)|not a diagnosis|consult (?:a|your) "
                         r"(?:doctor|physician|pharmacist)", re.IGNORECASE)
_ESCALATION = re.compile(r"\bemergency\b|\b(?:112|911|999)\b|urgent care|ambulance", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def review(graph: Graph, *, question: str, draft: str, known: str = "") -> dict[str, Any]:
    """`known`: the conditions the patient reported; saying "as you have asthma" is no diagnosis."""
    question, draft = question[:MAX_TEXT], draft[:MAX_TEXT]
    reported = {c.id for c in graph.find(known, "condition")}
    findings: list[dict[str, str]] = []
    flags = graph.find(question, "red_flag")
    escalation = " ".join(dict.fromkeys(f.attrs.get("advice", "") for f in flags)).strip()

    claims = [s for s in _SENTENCE.split(draft) if _CLAIM.search(s)
              and (_CERTAIN.search(s) or any(c.id not in reported for c in graph.find(s, "condition")))]
    if claims:
        findings.append({"rule": "definitive_diagnosis", "detail": claims[0].strip()[:300]})
        text = "\n\n".join(p for p in (escalation, BLOCKED, DISCLAIMER) if p)
        if escalation:
            findings.append({"rule": "escalation_added", "detail": ", ".join(f.name for f in flags)})
        return {"verdict": "blocked", "text": text, "findings": findings, "red_flags": [f.name for f in flags]}

    text = draft.strip()
    if flags and not _ESCALATION.search(text):
        text = f"{escalation}\n\n{text}".strip()
        findings.append({"rule": "escalation_added", "detail": ", ".join(f.name for f in flags)})
    if not _DISCLAIMER.search(text):
        text = f"{text}\n\n{DISCLAIMER}".strip()
        findings.append({"rule": "disclaimer_added", "detail": ""})
    return {"verdict": "rewritten" if findings else "pass", "text": text, "findings": findings,
            "red_flags": [f.name for f in flags]}
