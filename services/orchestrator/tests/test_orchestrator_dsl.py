"""The DSL: validation errors name node and field; references are checked; a Dify export
imports for supported node types and names the unsupported ones; imported graphs run."""

from __future__ import annotations

import pytest

from loom_common.dsl import DSLError, parse_graph
from loom_common.dsl.dify import import_dify
from loom_orchestrator.testkit import chain, edge, node

START = node("start", "start", variables=[{"variable": "q"}])

DIFY_EXPORT = """
app:
  mode: workflow
  name: Loom import test
kind: app
version: 0.3.0
workflow:
  conversation_variables: []
  environment_variables:
  - {name: greeting, value_type: string, value: Hello}
  features: {}
  graph:
    edges:
    - {id: e1, source: '1700000000001', sourceHandle: source, target: if1, targetHandle: target, type: custom}
    - {id: e2, source: if1, sourceHandle: 'true', target: tpl1, targetHandle: target, type: custom}
    - {id: e3, source: if1, sourceHandle: 'false', target: tpl2, targetHandle: target, type: custom}
    - {id: e4, source: tpl1, sourceHandle: source, target: agg, targetHandle: target, type: custom}
    - {id: e5, source: tpl2, sourceHandle: source, target: agg, targetHandle: target, type: custom}
    - {id: e6, source: agg, sourceHandle: source, target: code_words, targetHandle: target, type: custom}
    - {id: e9, source: code_words, sourceHandle: source, target: it, targetHandle: target, type: custom}
    - {id: e7, source: it, sourceHandle: source, target: end1, targetHandle: target, type: custom}
    - {id: e8, source: itstart, sourceHandle: source, target: inner, targetHandle: target, type: custom}
    nodes:
    - id: '1700000000001'
      type: custom
      position: {x: 0, y: 0}
      data:
        type: start
        title: Start
        selected: false
        variables:
        - {variable: name, label: Name, type: text-input, required: true, max_length: 48, options: []}
        - {variable: words, label: Words, type: paragraph, required: false}
    - id: if1
      type: custom
      data:
        type: if-else
        title: IF
        logical_operator: and
        conditions:
        - {id: c1, variable_selector: ['1700000000001', name], comparison_operator: start with, value: A, varType: string}
    - id: tpl1
      type: custom
      data: {type: template-transform, title: A, template: '{{ g }} {{ n }}!', variables: [{variable: n, value_selector: ['1700000000001', name]}, {variable: g, value_selector: [env, greeting]}]}
    - id: tpl2
      type: custom
      data: {type: template-transform, title: B, template: 'Hi {{ n }}', variables: [{variable: n, value_selector: ['1700000000001', name]}]}
    - id: agg
      type: custom
      data: {type: variable-aggregator, title: Agg, output_type: string, variables: [[tpl1, output], [tpl2, output]]}
    - id: it
      type: custom
      data: {type: iteration, title: Iter, iterator_selector: [code_words, out], output_selector: [inner, output], is_parallel: false, start_node_id: itstart}
    - id: itstart
      type: custom-iteration-start
      parentId: it
      data: {type: iteration-start, title: '', isInIteration: true}
    - id: inner
      type: custom
      parentId: it
      data: {type: template-transform, title: Up, isInIteration: true, iteration_id: it, template: '{{ w | upper }}', variables: [{variable: w, value_selector: [it, item]}]}
    - id: code_words
      type: custom
      data: {type: code, title: Split, code_language: python3, code: "def main(s):\\n  return {'out': s.split()}", variables: [{variable: s, value_selector: ['1700000000001', words]}], outputs: {out: {type: 'array[string]', children: null}}}
    - id: end1
      type: custom
      data: {type: end, title: End, outputs: [{variable: greeting, value_selector: [agg, output]}, {variable: words, value_selector: [it, output]}]}
    - id: note1
      type: custom-note
      data: {type: '', text: 'a sticky note'}
"""


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
    bad = DIFY_EXPORT.replace("type: custom-note", "type: custom").replace("type: ''", "type: document-extractor")
    with pytest.raises(DSLError) as err:
        import_dify(bad)
    assert err.value.problems == ["node 'note1' (document-extractor): not supported by Loom"]


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
