"""The editor and the DSL agree: the editor's every-node-type fixture (its round-trip and scoping
tests' graph) is a graph the gateway's validator accepts, and the editor knows exactly the node
types the orchestrator runs. Fast; no browser, no stack."""

from __future__ import annotations

import json
import re
from pathlib import Path

from loom_common.dsl import NODE_TYPES, parse_graph

EDITOR = Path(__file__).resolve().parents[2] / "services" / "console" / "src" / "editor"


def test_the_editors_fixture_is_a_valid_graph_with_every_node_type() -> None:
    raw = json.loads((EDITOR / "testing" / "every-node-type.json").read_text())
    graph = parse_graph(raw)
    assert {n.data.type for n in graph.nodes} == set(NODE_TYPES)


def test_the_editor_knows_every_node_type_the_orchestrator_runs() -> None:
    source = (EDITOR / "dsl" / "types.ts").read_text()
    listed = re.search(r"export const NODE_TYPES = \[(.*?)\] as const", source, re.S)
    assert listed, "NODE_TYPES not found in dsl/types.ts"
    assert re.findall(r"'([a-z-]+)'", listed.group(1)) == list(NODE_TYPES)
