"""The app DSL as the gateway stores, imports and exports it (Dify's export layout).

    version: "0.1.0"        # Loom app-DSL version
    kind: app
    app: {name, mode, icon, description}
    model_config: {...}     # chat / completion / agent apps: model, pre_prompt, user_input_form
    workflow: {graph: {nodes, edges}, features, environment_variables, conversation_variables}

The gateway checks the envelope (kind, mode, the part the mode needs); the graph itself is
validated by the orchestrator's DSL models (`loom_common.dsl`) when they are installed, so
both sides refuse the same documents. `RunRequested.graph` carries the whole published document.
"""

from __future__ import annotations

import copy
import importlib
from typing import Any

import yaml

from loom_gateway.domain.errors import BadRequest

DSL_VERSION = "0.1.0"
MODES = ("chat", "chatflow", "workflow", "agent", "completion")
GRAPH_MODES = ("chatflow", "workflow")


def default_dsl(mode: str, name: str, chat_model: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": DSL_VERSION, "kind": "app",
                           "app": {"name": name, "mode": mode, "icon": "", "description": ""}}
    if mode in GRAPH_MODES:
        nodes = [{"id": "start", "data": {"type": "start", "title": "Start", "variables": []}}]
        edges = []
        if mode == "chatflow":
            nodes += [{"id": "llm", "data": {"type": "llm", "title": "LLM",
                                             "model": {"provider": "loom", "name": chat_model, "mode": "chat"},
                                             "prompt_template": [{"role": "user", "text": "{{#sys.query#}}"}],
                                             "memory": {"window": {"enabled": True, "size": 10}}}},
                      {"id": "answer", "data": {"type": "answer", "title": "Answer", "answer": "{{#llm.text#}}"}}]
            edges = [{"id": "start-llm", "source": "start", "target": "llm"},
                     {"id": "llm-answer", "source": "llm", "target": "answer"}]
        else:
            nodes.append({"id": "end", "data": {"type": "end", "title": "End", "outputs": []}})
            edges = [{"id": "start-end", "source": "start", "target": "end"}]
        doc["workflow"] = {"graph": {"nodes": nodes, "edges": edges}, "features": {},
                           "environment_variables": [], "conversation_variables": []}
    else:
        doc["model_config"] = {"model": {"provider": "loom", "name": chat_model, "mode": "chat",
                                         "completion_params": {}},
                               "pre_prompt": "", "opening_statement": "", "suggested_questions": [],
                               "user_input_form": [],
                               "agent_mode": {"enabled": mode == "agent", "strategy": "function_call",
                                              "tools": []}}
    return doc


def validate(doc: Any) -> dict[str, Any]:
    """Check a DSL document; returns a normalised deep copy or raises BadRequest naming the field."""
    if not isinstance(doc, dict):
        raise BadRequest("the DSL must be a mapping", field="dsl")
    if doc.get("kind", "app") != "app":
        raise BadRequest("kind must be 'app'", field="dsl.kind")
    app = doc.get("app")
    if not isinstance(app, dict):
        raise BadRequest("app must be a mapping with name and mode", field="dsl.app")
    mode = app.get("mode")
    if mode == "advanced-chat":  # Dify's name for a chatflow
        mode = "chatflow"
    if mode not in MODES:
        raise BadRequest(f"app.mode must be one of {list(MODES)}", field="dsl.app.mode")
    if not isinstance(app.get("name"), str) or not app["name"].strip():
        raise BadRequest("app.name must be a non-empty string", field="dsl.app.name")
    out = copy.deepcopy(doc)
    out["app"]["mode"] = mode
    out.setdefault("version", DSL_VERSION)
    out["kind"] = "app"
    if mode in GRAPH_MODES:
        graph = (out.get("workflow") or {}).get("graph") if isinstance(out.get("workflow"), dict) else None
        if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
            raise BadRequest("workflow.graph.nodes must be a list", field="dsl.workflow.graph.nodes")
        if not isinstance(graph.get("edges", []), list):
            raise BadRequest("workflow.graph.edges must be a list", field="dsl.workflow.graph.edges")
        _orchestrator_check(out)
    elif not isinstance(out.get("model_config", {}), dict):
        raise BadRequest("model_config must be a mapping", field="dsl.model_config")
    return out


def _orchestrator_check(doc: dict[str, Any]) -> None:
    """Validate the graph with the orchestrator's DSL models when that package is present."""
    try:
        module = importlib.import_module("loom_common.dsl")
    except ImportError:
        return
    check = getattr(module, "validate_app_dsl", None) or getattr(module, "validate_dsl", None)
    if check is None:
        return
    try:
        check(doc)
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise BadRequest(f"invalid workflow: {exc}", field="dsl.workflow") from exc


def parse_yaml(text: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadRequest(f"not valid YAML: {exc}", field="data") from exc
    return validate(doc)


def dump_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def user_input_form(doc: dict[str, Any]) -> list[dict]:
    """Dify's `user_input_form` from the DSL: the start node's variables or model_config's form."""
    if "model_config" in doc:
        return list(doc["model_config"].get("user_input_form") or [])
    form = []
    for node in (doc.get("workflow") or {}).get("graph", {}).get("nodes", []):
        data = node.get("data") or {}
        if data.get("type") == "start":
            for var in data.get("variables") or []:
                kind = var.get("type", "text-input")
                form.append({kind: {"label": var.get("label", var.get("variable")), "variable": var.get("variable"),
                                    "required": bool(var.get("required", False)), "default": var.get("default", ""),
                                    **({"options": var["options"]} if "options" in var else {})}})
    return form
