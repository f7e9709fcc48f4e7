"""The DSL: validation errors name node and field; references are checked; a Dify export
imports for supported node types and names the unsupported ones; imported graphs run."""

from __future__ import annotations

from pathlib import Path

import pytest
from orchestrator_testkit import chain, edge, node

from loom_common.dsl import DSLError, parse_graph
from loom_common.dsl.dify import import_dify

START = node("start", "start", variables=[{"variable": "q"}])

DIFY_EXPORT = (Path(__file__).parent / "dify_export.yml").read_text()


def test_errors_name_the_node_and_the_field() -> None:
    g = {"nodes": [START, node("l1", "llm", model={}), node("x", "frobnicate")], "edges": []}
    with pytest.raises(DSLError) as err:
        parse_graph(g)
    assert "node 'x' (frobnicate): data.type: unknown node type" in str(err.value)
    g = {"nodes": [START, node("l1", "llm", model={"temperature": 1}, prompt_template=[{"role": "wizard"}])],
         "edges": []}
    with pytest.raises(DSLError) as err:
        parse_graph(g)
    assert {"node 'l1' (llm): data.model.name: Field required"} <= set(err.value.problems)
    assert any(p.startswith("node 'l1' (llm): data.prompt_template.0.role") for p in err.value.problems)


def test_references_edges_and_handles_are_checked() -> None:
    g = {"nodes": [START, node("a", "answer", answer="{{#ghost.text#}} {{#conversation.nope#}}"),
                   node("if", "if-else", cases=[{"case_id": "yes", "conditions": []}])],
         "edges": [edge("start", "if"), edge("if", "a", "maybe"), edge("a", "nowhere")]}
    with pytest.raises(DSLError) as err:
        parse_graph(g)
    text = str(err.value)
    assert "node 'a' (answer): answer: refers to {{#ghost.text#}} but there is no node 'ghost'" in text
    assert "node 'a' (answer): answer: no conversation variable 'nope'" in text
    assert "edge source_handle 'maybe'" in text.replace("edge '#1' ", "edge ")
    assert "target 'nowhere' is not a node" in text
    with pytest.raises(DSLError, match="cycle"):
        parse_graph({"nodes": [START, node("t", "template-transform", template="x"),
                               node("u", "template-transform", template="y")],
                     "edges": [*chain("start", "t", "u"), edge("u", "t")]})


def test_dify_import_names_unsupported_nodes() -> None:
    bad = DIFY_EXPORT.replace("type: custom-note", "type: custom").replace("type: ''", "type: datasource")
    with pytest.raises(DSLError) as err:
        import_dify(bad)
    assert err.value.problems == ["node 'note1' (datasource): not supported by Loom"]


async def test_dify_export_imports_and_runs(harness) -> None:
    imported = import_dify(DIFY_EXPORT)
    assert imported.mode == "workflow" and imported.name == "Loom import test"
    assert {n.id for n in imported.graph.nodes} >= {"if1", "it", "inner"} and "note1" not in {
        n.id for n in imported.graph.nodes}
    assert imported.graph.node("inner").parent_id == "it"

    class Words:  # the code node's sandbox, stood in for: this test is about the import
        async def invoke(self, tool, arguments, **_):
            return {"out": arguments["inputs"]["s"].split()}

    harness.services.tools = Words()
    graph = imported.graph.model_dump(by_alias=True)
    out = await harness.run(graph, {"name": "Ada", "words": "one two"})
    assert out.outputs == {"greeting": "Hello Ada!", "words": ["ONE", "TWO"]}, out.error
    out = await harness.run(graph, {"name": "Bob", "words": ""})
    assert out.outputs == {"greeting": "Hi Bob", "words": []}, out.error
