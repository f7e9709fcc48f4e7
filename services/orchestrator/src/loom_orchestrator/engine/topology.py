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
from loom_common.dsl.references import segments

STREAMERS = ("llm", "agent")


@dataclass
class Scope:
    container: str | None  # None: the top level
    entry: str
    nodes: dict[str, Node]
    out_edges: dict[str, list[Edge]] = field(default_factory=dict)
    in_edges: dict[str, list[Edge]] = field(default_factory=dict)
    stream_to: dict[str, str] = field(default_factory=dict)  # streaming node -> answer/end node


def compile_graph(graph: Graph) -> dict[str | None, Scope]:
    scopes: dict[str | None, Scope] = {}
    containers = [None] + [n.id for n in graph.nodes if n.data.type in ("iteration", "loop")]
    for c in containers:
        nodes = {n.id: n for n in graph.nodes if n.parent_id == c}
        if c is None:
            entry = next(n.id for n in nodes.values() if n.data.type == "start")
        else:
            data = graph.node(c).data
            entry = data.start_node_id or next(n.id for n in nodes.values() if n.data.type.endswith("-start"))
        scope = Scope(c, entry, nodes, {nid: [] for nid in nodes}, {nid: [] for nid in nodes})
        for e in graph.edges:
            if e.source in nodes:
                scope.out_edges[e.source].append(e)
                scope.in_edges[e.target].append(e)
        scope.stream_to = _stream_plan(scope)
        scopes[c] = scope
    return scopes


def _stream_plan(scope: Scope) -> dict[str, str]:
    plan: dict[str, str] = {}
    for node in scope.nodes.values():
        first = None
        if node.data.type == "answer":
            segs = segments(node.data.answer)
            first = segs[0].selector if segs else None
        elif node.data.type == "end" and node.data.outputs:
            first = tuple(node.data.outputs[0].value_selector)
        if not first or len(first) != 2 or first[1] != "text":
            continue
        src = first[0]
        ins = scope.in_edges.get(node.id, [])
        if (src in scope.nodes and scope.nodes[src].data.type in STREAMERS and src not in plan
                and len(ins) == 1 and ins[0].source == src and ins[0].source_handle == "source"):
            plan[src] = node.id
    return plan
