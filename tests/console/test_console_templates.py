"""The console's app templates (services/console/src/app/templates.json) are DSL documents the
gateway imports: each passes the same parse and validation as POST /apps/import."""

from __future__ import annotations

import json
from pathlib import Path

from loom_gateway.domain import dsl

TEMPLATES = Path(__file__).resolve().parents[2] / "services" / "console" / "src" / "app" / "templates.json"


def test_every_template_imports() -> None:
    templates = json.loads(TEMPLATES.read_text())
    assert len({t["id"] for t in templates}) == len(templates) >= 2
    for t in templates:
        doc = dsl.parse_yaml(json.dumps(t["dsl"]))  # what the import route runs on the text
        assert doc["app"]["mode"] in dsl.MODES, t["id"]
        assert t["label"] and t["about"], t["id"]
