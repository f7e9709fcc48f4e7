"""Lab values read from a report's text (what document-extractor's OCR gives) and flagged
against the graph's reference ranges (lab_test entities: unit, low, high). A value is the first
number after the test's name on the same line; a line may hold several tests."""

from __future__ import annotations

import re
from typing import Any

from loom_tools.medkg.check import as_text
from loom_tools.medkg.graph import MAX_TEXT, Graph

_NUMBER = re.compile(r"^[\s:=\-–|.]*(?:result\s*)?([<>]?\s*\d+(?:[.,]\d+)?)")


def read(graph: Graph, text: str | list[str] | None) -> dict[str, Any]:
    values: list[dict[str, Any]] = []
    seen: set[str] = set()
    for line in as_text(text)[:MAX_TEXT].splitlines():
        for test in graph.of_kind("lab_test"):
            if test.id in seen:
                continue
            for m in test.pattern().finditer(line):
                number = _NUMBER.match(line[m.end():])
                if not number:
                    continue
                value = float(number.group(1).lstrip("<> ").replace(",", "."))
                low, high = float(test.attrs["low"]), float(test.attrs["high"])
                flag = "low" if value < low else "high" if value > high else "normal"
                values.append({"test": test.id, "name": test.name, "value": value, "unit": test.attrs["unit"],
                               "low": low, "high": high, "flag": flag, "line": line.strip()[:200]})
                seen.add(test.id)
                break
    out = [v for v in values if v["flag"] != "normal"]
    summary = "\n".join(f"- {v['name']} {v['value']:g} {v['unit']}: {v['flag'].upper()} "
                        f"(reference {v['low']:g}-{v['high']:g} {v['unit']})".replace("  ", " ") for v in out)
    return {"values": values, "out_of_range": out,
            "summary": f"Out of range in the report:\n{summary}" if out else ""}
