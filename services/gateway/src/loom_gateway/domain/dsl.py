"""The app DSL as the gateway stores, imports and exports it.

    version: "loom/1"       # the document layout (the graph has its own version inside)
    kind: app
    app: {name, mode, icon, description}
    workflow: {graph: {version, nodes, edges, conversation_variables, environment_variables}}

Every mode is a graph (chat = start -> llm -> answer, agent = start -> agent -> answer, ...):
the orchestrator runs graphs only, and `RunRequested.graph` carries `workflow.graph` of the
published version. Graphs are validated by the orchestrator's models (`loom_common.dsl`),
so both sides refuse the same documents; a Dify export (any other `version`) is converted
by `loom_common.dsl.dify.import_dify`, which names every node type Loom does not run.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import yaml

from loom_common import untrusted_yaml
from loom_common.dsl import DSLError, parse_graph
from loom_common.dsl.dify import import_dify
from loom_common.dsl.flow_nodes import InputVariable
from loom_gateway.domain.errors import BadRequest

DOC_VERSION = "loom/1"
MAX_DSL_CHARS = 2_000_000   # an imported DSL's YAML text (a large real workflow is ~100 KB)
MODES = ("chat", "chatflow", "workflow", "agent", "completion")
CHAT_MODES = ("chat", "chatflow", "agent")


def _model(name: str) -> dict:
    return {"provider": "loom", "name": name, "mode": "chat", "completion_params": {"max_tokens": 256}}


def token_budget(doc: dict[str, Any], default: int) -> int:
    """The tokens one run of the app may spend, as far as its DSL says: the `max_tokens` of each
    node that calls a model (`default` where one names none). What a quota holds for a run."""
    total = 0
    for node in (doc.get("workflow") or {}).get("graph", {}).get("nodes", []):
        model = (node.get("data") or {}).get("model")
        if isinstance(model, dict) and model.get("name"):
            params = model.get("completion_params") or {}
            total += int(params.get("max_tokens") or default) if isinstance(params, dict) else default
    return total


def default_graph(mode: str, chat_model: str) -> dict[str, Any]:
    start = {"id": "start", "data": {"type": "start", "title": "Start", "variables": []}}
    nodes: list[dict] = [start]
    if mode in ("chat", "chatflow"):
        nodes += [{"id": "llm", "data": {"type": "llm", "title": "LLM", "model": _model(chat_model),
                                         "prompt_template": [], "memory": {"window": {"enabled": True, "size": 10}}}},
                  {"id": "answer", "data": {"type": "answer", "title": "Answer", "answer": "{{#llm.text#}}"}}]
    elif mode == "agent":
        nodes += [{"id": "agent", "data": {"type": "agent", "title": "Agent", "model": _model(chat_model),
                                           "tools": [], "memory": {"window": {"enabled": True, "size": 10}}}},
                  {"id": "answer", "data": {"type": "answer", "title": "Answer", "answer": "{{#agent.text#}}"}}]
    elif mode == "completion":
        start["data"]["variables"] = [{"variable": "query", "label": "Query", "type": "paragraph",
                                       "required": False, "default": ""}]
        nodes += [{"id": "llm", "data": {"type": "llm", "title": "LLM", "model": _model(chat_model),
                                         "prompt_template": [{"role": "user", "text": "{{#start.query#}}"}]}},
                  {"id": "answer", "data": {"type": "answer", "title": "Answer", "answer": "{{#llm.text#}}"}}]
    else:
        nodes.append({"id": "end", "data": {"type": "end", "title": "End", "outputs": []}})
    ids = [n["id"] for n in nodes]
    edges = [{"id": f"{a}-{b}", "source": a, "target": b} for a, b in itertools.pairwise(ids)]
    return {"version": "1", "nodes": nodes, "edges": edges, "conversation_variables": [],
            "environment_variables": []}


def default_dsl(mode: str, name: str, chat_model: str) -> dict[str, Any]:
    return {"version": DOC_VERSION, "kind": "app", "app": {"name": name, "mode": mode, "icon": "", "description": ""},
            "workflow": {"graph": default_graph(mode, chat_model)}}


def check_graph(graph: Any) -> dict[str, Any]:
    """Validate a graph with the orchestrator's models; returns it as plain JSON data."""
    try:
        parsed = parse_graph(graph)
    except DSLError as exc:
        raise BadRequest(f"invalid workflow graph: {exc}", field="dsl.workflow.graph") from exc
    return parsed.model_dump(mode="json", exclude_none=True)


def validate(doc: Any) -> dict[str, Any]:
    """Check a Loom DSL document; returns a normalised copy or raises BadRequest naming the field."""
    if not isinstance(doc, dict):
        raise BadRequest("the DSL must be a mapping", field="dsl")
    if doc.get("kind", "app") != "app":
        raise BadRequest("kind must be 'app'", field="dsl.kind")
    app = doc.get("app")
    if not isinstance(app, dict):
        raise BadRequest("app must be a mapping with name and mode", field="dsl.app")
    if app.get("mode") not in MODES:
        raise BadRequest(f"app.mode must be one of {list(MODES)}", field="dsl.app.mode")
    if not isinstance(app.get("name"), str) or not app["name"].strip():
        raise BadRequest("app.name must be a non-empty string", field="dsl.app.name")
    workflow = doc.get("workflow")
    if not isinstance(workflow, dict) or not isinstance(workflow.get("graph"), dict):
        raise BadRequest("workflow.graph must be a mapping", field="dsl.workflow.graph")
    out = copy.deepcopy(doc)
    out["version"], out["kind"] = DOC_VERSION, "app"
    out["workflow"]["graph"] = check_graph(workflow["graph"])
    return out


def parse_yaml(text: str) -> dict[str, Any]:
    """A Loom document, or a Dify export converted to one (no YAML aliases, size capped:
    `loom_common.untrusted_yaml`)."""
    try:
        doc = untrusted_yaml.load(text, max_chars=MAX_DSL_CHARS, field="data")
    except untrusted_yaml.UntrustedYamlError as exc:
        raise BadRequest(exc.message, field=exc.field) from None
    if not isinstance(doc, dict):
        raise BadRequest("the DSL must be a mapping", field="data")
    if doc.get("version") == DOC_VERSION:
        return validate(doc)
    try:
        imported = import_dify(doc)
    except DSLError as exc:
        raise BadRequest(f"cannot import this Dify DSL: {exc}", field="data") from exc
    app = doc.get("app") or {}
    workflow: dict[str, Any] = {"graph": imported.graph.model_dump(mode="json", exclude_none=True)}
    if features := _dify_features(doc):
        workflow["features"] = features
    return validate({"version": DOC_VERSION, "kind": "app",
                     "app": {"name": imported.name or "Imported app", "mode": imported.mode,
                             "icon": app.get("icon") or "", "description": app.get("description") or ""},
                     "workflow": workflow})


# The app features Loom serves (GET /v1/parameters, suggested questions): a Dify export keeps
# them under workflow.features (chatflow, workflow) or model_config (basic chat, agent, completion).
_FEATURES = ("opening_statement", "suggested_questions", "suggested_questions_after_answer")


def _dify_features(doc: dict[str, Any]) -> dict[str, Any]:
    source = (doc.get("workflow") or {}).get("features") or doc.get("model_config") or {}
    return {k: source[k] for k in _FEATURES if isinstance(source, dict) and source.get(k) is not None}


def dump_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def run_graph(doc: dict[str, Any]) -> dict[str, Any]:
    """What `RunRequested.graph` carries: the document's graph."""
    return doc["workflow"]["graph"]


def _start_variables_raw(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The app's start node's variables as stored (the graph was validated when saved: it has
    exactly one start outside iterations and loops)."""
    for node in doc.get("workflow", {}).get("graph", {}).get("nodes", []):
        data = node.get("data") or {}
        if data.get("type") == "start" and node.get("parent_id") is None:
            return data.get("variables") or []
    return []


def start_variables(doc: dict[str, Any]) -> list[InputVariable]:
    """The app's typed inputs: its start node's variables."""
    return [InputVariable.model_validate(v) for v in _start_variables_raw(doc)]


def user_input_form(doc: dict[str, Any]) -> list[dict]:
    """Dify's `user_input_form`: the start node's variables."""
    return [{var.get("type", "text-input"): {
                "label": var.get("label") or var.get("variable"), "variable": var.get("variable"),
                "required": bool(var.get("required", True)), "default": var.get("default") or "",
                **({"options": var["options"]} if var.get("options") else {})}}
            for var in _start_variables_raw(doc)]
