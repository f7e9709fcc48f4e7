"""A graph compiled for traversal: one `Scope` per level (the top level and each iteration or
loop body), with in/out edges, its entry node, and the streaming plan.

Streaming plan: Dify streams an LLM's tokens into the answer that shows them. Here an LLM or
agent node streams live when an answer (chat) or end (workflow) node starts with its `text`
and is fed by that node alone through a plain edge, so the tokens can only belong to that
answer: no branch decided later can make them wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loom_common.dsl.graph import Edge, Graph, Node
from loom_orchestrator.engine.node import NodeRegistry


@dataclass
class Scope:
    container: str | None  # None: the top level
    entry: str
    nodes: dict[str, Node]
    out_edges: dict[str, list[Edge]] = field(default_factory=dict)
    in_edges: dict[str, list[Edge]] = field(default_factory=dict)
    stream_to: dict[str, str] = field(default_factory=dict)  # streaming node -> answer/end node


def compile_graph(graph: Graph, registry: NodeRegistry) -> dict[str | None, Scope]:
    """The graph's scopes; node kinds are told apart by their nodes' traits in `registry`."""
    scopes: dict[str | None, Scope] = {}
    traits = {n.id: registry[n.data.type].traits for n in graph.nodes}
    containers = [None] + [n.id for n in graph.nodes if traits[n.id].container]
    for c in containers:
        nodes = {n.id: n for n in graph.nodes if n.parent_id == c}
        entries = (nid for nid in nodes if traits[nid].entry)
        entry = next(entries) if c is None else getattr(graph.node(c).data, "start_node_id", "") or next(entries)
        scope = Scope(c, entry, nodes, {nid: [] for nid in nodes}, {nid: [] for nid in nodes})
        for e in graph.edges:
            if e.source in nodes:
                scope.out_edges[e.source].append(e)
                scope.in_edges[e.target].append(e)
        scope.stream_to = _stream_plan(scope, registry)
        scopes[c] = scope
    return scopes


def _stream_plan(scope: Scope, registry: NodeRegistry) -> dict[str, str]:
    plan: dict[str, str] = {}
    for node in scope.nodes.values():
        first = registry[node.data.type].shows_first(node.data)
        if not first or len(first) != 2 or first[1] != "text":
            continue
        src = first[0]
        ins = scope.in_edges.get(node.id, [])
        if (src in scope.nodes and registry[scope.nodes[src].data.type].traits.streams and src not in plan
                and len(ins) == 1 and ins[0].source == src and ins[0].source_handle == "source"):
            plan[src] = node.id
    return plan
