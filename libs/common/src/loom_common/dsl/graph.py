"""The app graph (DSL version 1): nodes, edges with source handles, conversation and
environment variables, and its validation.

`parse_graph(mapping)` is the one way in: it returns a `Graph` or raises `DSLError`, whose
`problems` each name the node (id and type) and the field, e.g.

    node 'llm1' (llm): model.name: Field required
    edge 'e3': target 'nope' is not a node
    node 'ans' (answer): answer: refers to {{#gone.text#}} but there is no node 'gone'
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue, TypeAdapter, ValidationError

from loom_common.dsl.ai_nodes import (
    AgentData,
    KnowledgeRetrievalData,
    LLMData,
    ParameterExtractorData,
    QuestionClassifierData,
)
from loom_common.dsl.base import Model, NodeData, is_reserved
from loom_common.dsl.flow_nodes import (
    AnswerData,
    CodeData,
    EndData,
    HttpRequestData,
    IfElseData,
    IterationData,
    IterationStartData,
    LoopData,
    LoopEndData,
    LoopStartData,
    StartData,
    TemplateTransformData,
    ToolData,
    VariableAggregatorData,
    VariableAssignerData,
)
from loom_common.dsl.human_input import HumanInputData
from loom_common.dsl.list_nodes import DocumentExtractorData, ListOperatorData
from loom_common.dsl.references import references

DSL_VERSION = "1"

AnyNodeData = Annotated[
    StartData | EndData | AnswerData | LLMData | KnowledgeRetrievalData | IfElseData | QuestionClassifierData
    | ParameterExtractorData | CodeData | TemplateTransformData | HttpRequestData | ToolData
    | VariableAggregatorData | VariableAssignerData | IterationData | IterationStartData | LoopData
    | LoopStartData | LoopEndData | AgentData | ListOperatorData | DocumentExtractorData | HumanInputData,
    Field(discriminator="type"),
]
NODE_TYPES: tuple[str, ...] = (
    "start", "end", "answer", "llm", "knowledge-retrieval", "if-else", "question-classifier",
    "parameter-extractor", "code", "template-transform", "http-request", "tool", "variable-aggregator",
    "assigner", "iteration", "iteration-start", "loop", "loop-start", "loop-end", "agent", "list-operator",
    "document-extractor", "human-input",
)
_DATA = TypeAdapter(AnyNodeData)
# Node types whose outgoing edges are chosen by a handle; all others use "source".
CONTAINERS = ("iteration", "loop")


class Node(Model):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    data: AnyNodeData
    parent_id: str | None = None  # the iteration/loop node this node runs inside
    position: dict[str, float] | None = None


class Edge(Model):
    id: str = ""
    source: str
    target: str
    source_handle: str = "source"
    target_handle: str = "target"


class ConversationVariable(Model):
    """A chatflow variable that keeps its value between turns of one conversation."""

    id: str = Field("", max_length=64)  # Dify's variable id, kept on import ("" = derived from the name)
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value_type: Literal["string", "number", "object", "boolean", "array[string]", "array[number]",
                        "array[object]", "array[any]"] = "string"
    value: JsonValue = None
    description: str = ""


class EnvironmentVariable(Model):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value_type: Literal["string", "number", "secret"] = "string"
    value: JsonValue = None


class Graph(Model):
    version: Literal["1"] = DSL_VERSION
    nodes: list[Node]
    edges: list[Edge] = Field(default_factory=list)
    conversation_variables: list[ConversationVariable] = Field(default_factory=list)
    environment_variables: list[EnvironmentVariable] = Field(default_factory=list)

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)


class DSLError(ValueError):
    """The graph is not valid; `problems` lists each one, naming node and field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid workflow graph:\n  " + "\n  ".join(problems))


def _loc(loc: tuple[Any, ...]) -> str:
    # Drop the discriminator tag pydantic puts in the path ("data.llm.model" -> "data.model").
    return ".".join(str(p) for p in loc) or "(root)"


def _node_problems(raw: Any, index: int) -> list[str]:
    if not isinstance(raw, dict):
        return [f"nodes.{index}: a node is an object with id and data"]
    nid, ntype = raw.get("id", f"#{index}"), (raw.get("data") or {}).get("type", "?")
    if ntype not in NODE_TYPES:
        return [f"node '{nid}' ({ntype}): data.type: unknown node type; supported: {', '.join(NODE_TYPES)}"]
    try:
        Node.model_validate(raw)
        return []
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            loc = list(err["loc"])
            if len(loc) >= 2 and loc[0] == "data" and loc[1] == ntype:
                loc.pop(1)
            out.append(f"node '{nid}' ({ntype}): {_loc(tuple(loc))}: {err['msg']}")
        return out


def parse_graph(raw: Any) -> Graph:
    """Validate a graph mapping (as stored by the gateway) and its cross-references."""
    if not isinstance(raw, dict):
        raise DSLError(["(root): the graph is an object with nodes and edges"])
    problems: list[str] = []
    for i, node in enumerate(raw.get("nodes") or []):
        problems += _node_problems(node, i)
    if problems:
        raise DSLError(problems)
    try:
        graph = Graph.model_validate(raw)
    except ValidationError as exc:
        raise DSLError([f"{_loc(e['loc'])}: {e['msg']}" for e in exc.errors()]) from None
    problems = check(graph)
    if problems:
        raise DSLError(problems)
    return graph


def check(graph: Graph) -> list[str]:
    """Cross-reference checks pydantic cannot do alone."""
    problems: list[str] = []
    ids: dict[str, Node] = {}
    for n in graph.nodes:
        if n.id in ids:
            problems.append(f"node '{n.id}': id: duplicated")
        ids[n.id] = n
    if not graph.nodes:
        return ["nodes: a graph needs at least a start node"]
    for n in graph.nodes:
        if n.parent_id is not None and (n.parent_id not in ids or ids[n.parent_id].data.type not in CONTAINERS):
            problems.append(f"node '{n.id}' ({n.data.type}): parent_id: '{n.parent_id}' is not an iteration or loop")
        elif n.parent_id is not None and n.data.type == "human-input":
            # A paused run resumes from its journal; a container's round is not journaled mid-way.
            problems.append(f"node '{n.id}' (human-input): parent_id: a human-input node cannot run inside "
                            "an iteration or loop")
    top_starts = [n for n in graph.nodes if n.data.type == "start" and n.parent_id is None]
    if len(top_starts) != 1:
        problems.append(f"nodes: exactly one start node outside iterations/loops is needed, found {len(top_starts)}")
    problems += _check_edges(graph, ids)
    problems += _check_containers(graph, ids)
    problems += _check_references(graph, ids)
    if not problems:
        problems += _check_acyclic(graph)
    return problems


def _check_edges(graph: Graph, ids: dict[str, Node]) -> list[str]:
    problems = []
    for i, e in enumerate(graph.edges):
        name = e.id or f"#{i}"
        for end in ("source", "target"):
            if getattr(e, end) not in ids:
                problems.append(f"edge '{name}': {end} '{getattr(e, end)}' is not a node")
        if e.source not in ids or e.target not in ids:
            continue
        src, dst = ids[e.source], ids[e.target]
        if src.parent_id != dst.parent_id:
            problems.append(f"edge '{name}': '{e.source}' and '{e.target}' are not in the same iteration/loop")
        handles = getattr(src.data, "handles", None)
        allowed = (handles() if handles else {"source"}) | (
            {"fail-branch", "source"} if src.data.error_strategy == "fail-branch" else set())
        if e.source_handle not in allowed:
            problems.append(f"node '{src.id}' ({src.data.type}): edge '{name}' source_handle "
                            f"'{e.source_handle}' is none of {sorted(allowed)}")
    return problems


def _check_containers(graph: Graph, ids: dict[str, Node]) -> list[str]:
    problems = []
    for n in graph.nodes:
        if n.data.type not in CONTAINERS:
            continue
        start_type = f"{n.data.type}-start"
        children = [c for c in graph.nodes if c.parent_id == n.id]
        starts = [c.id for c in children if c.data.type == start_type]
        start = n.data.start_node_id or (starts[0] if len(starts) == 1 else "")
        if start not in {c.id for c in children}:
            problems.append(f"node '{n.id}' ({n.data.type}): start_node_id: needs one child "
                            f"'{start_type}' node (or start_node_id naming a child)")
    return problems


def _check_references(graph: Graph, ids: dict[str, Node]) -> list[str]:
    problems = []
    conv = {v.name for v in graph.conversation_variables}
    env = {v.name for v in graph.environment_variables}
    for n in graph.nodes:
        found = list(n.data.selectors())
        for field, text in n.data.templates():
            found += [(field, sel) for sel in references(text)]
        for field, sel in found:
            head = sel[0]
            if is_reserved(sel):
                known = {"conversation": conv, "env": env}.get(head)
                if known is not None and sel[1] not in known:
                    problems.append(f"node '{n.id}' ({n.data.type}): {field}: no {head} variable '{sel[1]}'")
            elif head not in ids:
                problems.append(f"node '{n.id}' ({n.data.type}): {field}: refers to "
                                f"{{{{#{'.'.join(sel)}#}}}} but there is no node '{head}'")
    return problems


def _check_acyclic(graph: Graph) -> list[str]:
    """Cycles are only allowed through loop nodes, never as edges."""
    out: dict[str, list[str]] = defaultdict(list)
    indeg: dict[str, int] = {n.id: 0 for n in graph.nodes}
    for e in graph.edges:
        out[e.source].append(e.target)
        indeg[e.target] += 1
    ready = [n for n, d in indeg.items() if d == 0]
    seen = 0
    while ready:
        nid = ready.pop()
        seen += 1
        for t in out[nid]:
            indeg[t] -= 1
            if indeg[t] == 0:
                ready.append(t)
    if seen != len(indeg):
        stuck = sorted(n for n, d in indeg.items() if d > 0)
        return [f"edges: the graph has a cycle through {', '.join(stuck)} (use a loop node)"]
    return []


def node_data(raw: dict[str, Any]) -> NodeData:
    """Validate one node's data alone (used by editors to check a node as it is edited)."""
    return _DATA.validate_python(raw)
