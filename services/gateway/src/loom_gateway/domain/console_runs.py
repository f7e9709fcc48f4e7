"""The console's runs of an app's draft: the whole draft (the editor's debugger), one node of it
with hand-typed inputs, and a stored run's events read back as its trace.

All three go through the same path as a published run (`Execution.start`: rows, then
`RunRequested` on the bus, then the run's events): a draft run is a run whose graph is the
draft's instead of a published version's, recorded with `invoke_from` = debugger.

A single node runs as a one-node workflow built here, not through a special orchestrator
entry point: a start node whose variables stand for what the node reads, then the node, with
every reference to an upstream node rewritten to the start variable standing for it. So the
orchestrator runs the node exactly as it would in the full graph (same node code, retries,
timeouts, events), and the node's `node_finished` event is the answer. Hand-typed inputs are
keyed by the selector they stand for, `"<node_id>.<variable>"` (e.g. `"start.city"`,
`"llm.text"`, `"sys.query"`, `"conversation.topic"`, `"env.base"`); `sys.query` and `sys.files`
become the run's query and files, `env.*` and `conversation.*` the variables' values.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from typing import Any

from loom_common.dsl import DSLError, parse_graph
from loom_common.dsl.graph import CONTAINERS, node_data
from loom_common.dsl.references import REFERENCE, RESERVED_SCOPES, references
from loom_common.events import RunEvent
from loom_common.events.runs import NodeFinished
from loom_gateway.domain import dsl
from loom_gateway.domain.errors import BadRequest, NotFound
from loom_gateway.store.apps import PublishedApp

SINGLE_START = "single_node_start"  # the one-node graph's start node (not a node id of the draft)
# Node types that cannot run alone: the graph's ends, and containers (their children need them).
_NOT_ALONE = ("start", "end", "iteration-start", "loop-start", "loop-end", *CONTAINERS)
MAX_TYPED_INPUTS = 200
# A trace holds at most this many events (a run's events are few; this bounds a runaway one).
MAX_TRACE_EVENTS = 20_000


async def draft_app(apps, tenant_id: str, app_id: str) -> PublishedApp:
    """The app's current draft, shaped like a published version (`version` None)."""
    app = await apps.get(tenant_id, app_id)
    return PublishedApp(app["id"], tenant_id, app["mode"], app["name"], None,
                        await apps.draft_for_run(tenant_id, app_id))   # secrets opened for the run


def run_kind(mode: str) -> str:
    """Which service API a mode's run stands for (chat-messages, completion-messages, workflows/run)."""
    if mode in dsl.CHAT_MODES:
        return "chat"
    return "completion" if mode == "completion" else "workflow"


# ---- one node ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SingleNode:
    """A one-node workflow standing for one node of the draft, and what to run it with."""

    app: PublishedApp          # mode workflow, its DSL the one-node graph
    inputs: dict[str, Any]     # the start node's inputs (one per upstream value the node reads)
    query: str | None
    files: list
    names: dict[str, str] = field(default_factory=dict)  # start variable -> the selector it stands for


def _read_selectors(data) -> list[list[str]]:
    found = [sel for _, sel in data.selectors()]
    for _, text in data.templates():
        found += references(text)
    return found


def _input_type(value: Any) -> str:
    """A start variable type that takes this hand-typed value as it is (lists pass unchecked, as files do)."""
    if isinstance(value, bool):
        return "checkbox"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "json_object"
    if isinstance(value, list):
        return "file-list"
    return "paragraph"


def _rewrite(value: Any, names: dict[tuple[str, str], str]) -> Any:
    """The node's data with every read of an upstream value pointed at its start variable."""
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            parts = m.group(1).split(".")
            name = names.get((parts[0], parts[1]))
            return "{{#" + ".".join([SINGLE_START, name, *parts[2:]]) + "#}}" if name else m.group(0)
        return REFERENCE.sub(sub, value)
    if isinstance(value, list):
        if len(value) >= 2 and all(isinstance(p, str) for p in value) and (value[0], value[1]) in names:
            return [SINGLE_START, names[(value[0], value[1])], *value[2:]]
        return [_rewrite(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _rewrite(v, names) for k, v in value.items()}
    return value


def single_node(app: PublishedApp, node_id: str, typed: Any) -> SingleNode:
    """Build the one-node workflow for `node_id` of the draft, fed with the hand-typed values."""
    if not isinstance(typed, dict):
        raise BadRequest("inputs must be an object keyed by selector ('node_id.variable')", field="inputs")
    if len(typed) > MAX_TYPED_INPUTS:
        raise BadRequest(f"inputs may hold at most {MAX_TYPED_INPUTS} values", field="inputs")
    graph = dsl.run_graph(app.dsl)
    raw = next((n for n in graph.get("nodes", []) if n.get("id") == node_id), None)
    if raw is None:
        raise NotFound(f"The draft has no node '{node_id}'.", code="node_not_exists")
    data = node_data(raw["data"])  # the draft was validated when saved
    if data.type in _NOT_ALONE:
        raise BadRequest(f"a {data.type} node cannot run alone", field="node_id")
    read = {(sel[0], sel[1]) for sel in _read_selectors(data)}
    for key in typed:
        parts = key.split(".") if isinstance(key, str) else []
        if len(parts) != 2 or not all(parts) or (parts[0], parts[1]) not in read:
            raise BadRequest(f"node '{node_id}' reads no '{key}' (keys are 'node_id.variable' it reads: "
                             f"{sorted('.'.join(r) for r in read)})", field=f"inputs.{key}")
    upstream = sorted(r for r in read if r[0] not in RESERVED_SCOPES)
    names = {ref: f"v{i}" for i, ref in enumerate(upstream)}
    variables, inputs = [], {}
    for ref, name in names.items():
        value = typed.get(".".join(ref))
        variables.append({"variable": name, "label": ".".join(ref), "type": _input_type(value), "required": False})
        inputs[name] = value
    node = {k: v for k, v in raw.items() if k not in ("parent_id", "data")}
    node["data"] = _rewrite(copy.deepcopy(raw["data"]), names)
    one = {"version": graph.get("version", "1"),
           "nodes": [{"id": SINGLE_START, "data": {"type": "start", "title": "Inputs", "variables": variables}},
                     node],
           "edges": [{"id": f"{SINGLE_START}-{node_id}", "source": SINGLE_START, "target": node_id}],
           "conversation_variables": _with_values(graph.get("conversation_variables"), "conversation", typed),
           "environment_variables": _with_values(graph.get("environment_variables"), "env", typed)}
    try:
        parsed = parse_graph(one)
    except DSLError as exc:
        raise BadRequest(f"node '{node_id}' cannot run alone: {exc}", field="node_id") from None
    doc = {**app.dsl, "app": {**app.dsl["app"], "mode": "workflow"},
           "workflow": {**app.dsl.get("workflow", {}), "graph": parsed.model_dump(mode="json", exclude_none=True)}}
    query = typed.get("sys.query")
    files = typed.get("sys.files") or []
    if query is not None and not isinstance(query, str):
        raise BadRequest("sys.query must be text", field="inputs.sys.query")
    if not isinstance(files, list):
        raise BadRequest("sys.files must be a list of files", field="inputs.sys.files")
    return SingleNode(replace(app, mode="workflow", dsl=doc), inputs, query, files,
                      {name: ".".join(ref) for ref, name in names.items()})


def _with_values(declared: Any, scope: str, typed: dict) -> list:
    """The draft's conversation or environment variables, with hand-typed values where given."""
    out = []
    for var in declared or []:
        key = f"{scope}.{var.get('name')}"
        out.append({**var, "value": typed[key]} if key in typed else var)
    return out


def node_result(node_id: str, events: list[RunEvent], run_error: str | None) -> dict[str, Any]:
    """The node's outcome from its `node_finished` event (the run's error when it never finished)."""
    d = next((ev.data for ev in reversed(events) if isinstance(ev.data, NodeFinished) and ev.data.node_id == node_id),
             None)
    if d is None:
        return {"status": "failed", "inputs": {}, "outputs": {}, "error": run_error or "the node did not run",
                "elapsed_time": 0.0, "total_tokens": 0}
    return {"status": d.status, "inputs": d.inputs or {}, "outputs": d.outputs or {}, "error": d.error,
            "elapsed_time": d.elapsed_time, "total_tokens": d.execution_metadata.total_tokens}


