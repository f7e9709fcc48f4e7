"""Variable references: selectors (`["node_id", "field", ...]`) and `{{#node_id.field#}}` templates.

A selector names a value in a run's variable pool: its first element is a node id or one of
the reserved scopes (`sys`, `env`, `conversation`), the rest walk into that node's outputs.
Templates embed selectors in text the way Dify writes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RESERVED_SCOPES = ("sys", "env", "conversation")

# Dify's reference syntax: {{#node_id.field.sub#}}; node ids may contain letters, digits, _ and -.
REFERENCE = re.compile(r"\{\{#([A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)+)#\}\}")

Selector = list[str]


@dataclass(frozen=True)
class Segment:
    """A piece of a template: literal text, or a reference to resolve."""

    text: str = ""
    selector: tuple[str, ...] | None = None


def references(template: str) -> list[list[str]]:
    """Every selector a template refers to, in order of appearance."""
    return [m.group(1).split(".") for m in REFERENCE.finditer(template or "")]


def segments(template: str) -> list[Segment]:
    """Split a template into literal and reference segments (empty literals dropped)."""
    out: list[Segment] = []
    pos = 0
    for m in REFERENCE.finditer(template or ""):
        if m.start() > pos:
            out.append(Segment(text=template[pos:m.start()]))
        out.append(Segment(selector=tuple(m.group(1).split("."))))
        pos = m.end()
    if pos < len(template or ""):
        out.append(Segment(text=template[pos:]))
    return out
