"""Import of a Dify DSL export (the YAML `app` / `workflow.graph.nodes/edges` file).

Each supported node type maps onto Loom's DSL, mostly field for field; where Dify's shape
differs (the old single-case if-else, assigner v1, http body lists, agent parameters,
retrieval weights) the mapping is written out below. Nodes of a type Loom does not run
make the import fail with one problem per node naming its id and type; UI notes are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loom_common.dsl.graph import NODE_TYPES, DSLError, Graph, parse_graph

_MODES = {"advanced-chat": "chatflow", "workflow": "workflow", "agent-chat": "agent",
          "chat": "chat", "completion": "completion"}
_IGNORED = ("custom-note", "note")


@dataclass(frozen=True)
class DifyImport:
    graph: Graph
    name: str
    mode: str  # Loom's app mode: chatflow | workflow | agent | chat | completion
    dify_version: str


def import_dify(source: str | dict[str, Any]) -> DifyImport:
    if isinstance(source, str):
        from loom_common import untrusted_yaml  # no aliases, size capped

        try:
            source = untrusted_yaml.load(source)
        except untrusted_yaml.UntrustedYamlError as exc:
            raise DSLError([f"(yaml): {exc.message}"]) from None
    if not isinstance(source, dict):
        raise DSLError(["(root): a Dify export is a mapping with app and workflow"])
    app = source.get("app") or {}
    workflow = source.get("workflow") or {}
    graph = workflow.get("graph") or {}
    if not isinstance(graph.get("nodes"), list):
        raise DSLError(["workflow.graph.nodes: missing (only workflow and chatflow apps can be imported)"])
    nodes, problems = [], []
    for raw in graph["nodes"]:
        data = dict(raw.get("data") or {})
        ntype = data.get("type") or raw.get("type")
        if raw.get("type") in _IGNORED or ntype in _IGNORED:
            continue
        if ntype not in NODE_TYPES:
            problems.append(f"node '{raw.get('id')}' ({ntype}): not supported by Loom")
            continue
        parent = raw.get("parentId") or data.get("iteration_id") or data.get("loop_id")
        nodes.append({"id": raw.get("id"), "data": _MAPPERS.get(ntype, _same)(data),
                      "parent_id": parent, "position": raw.get("position")})
    if problems:
        raise DSLError(problems)
    kept = {n["id"] for n in nodes}
    edges = [{"id": e.get("id", ""), "source": e["source"], "target": e["target"],
              "source_handle": _handle(e.get("sourceHandle") or "source"),
              "target_handle": e.get("targetHandle") or "target"}
             for e in graph.get("edges") or [] if e.get("source") in kept and e.get("target") in kept]
    ours = {
        "version": "1", "nodes": nodes, "edges": edges,
        "conversation_variables": [
            {"id": str(v.get("id") or ""), "name": v["name"], "value_type": v.get("value_type", "string"),
             "value": v.get("value"), "description": v.get("description", "")}
            for v in workflow.get("conversation_variables") or []],
        "environment_variables": [
            {"name": v["name"], "value_type": v.get("value_type", "string"), "value": v.get("value")}
            for v in workflow.get("environment_variables") or []],
    }
    return DifyImport(graph=parse_graph(ours), name=app.get("name", ""),
                      mode=_MODES.get(app.get("mode", "workflow"), "workflow"),
                      dify_version=str(source.get("version", "")))


def _same(data: dict[str, Any]) -> dict[str, Any]:
    return data


def _if_else(data: dict[str, Any]) -> dict[str, Any]:
    if "cases" not in data and "conditions" in data:  # Dify < 0.8: one implicit "true" case
        data["cases"] = [{"case_id": "true", "logical_operator": data.get("logical_operator", "and"),
                          "conditions": data["conditions"]}]
    return data


def _assigner(data: dict[str, Any]) -> dict[str, Any]:
    if "items" not in data and "assigned_variable_selector" in data:  # assigner v1
        data["items"] = [{"variable_selector": data["assigned_variable_selector"], "input_type": "variable",
                          "operation": data.get("write_mode", "over-write"),
                          "value": data.get("input_variable_selector")}]
    return data


def _http(data: dict[str, Any]) -> dict[str, Any]:
    body = data.get("body") or {}
    if isinstance(body.get("data"), list) and body.get("type") in ("json", "raw-text"):
        body["data"] = "".join(str(item.get("value", "")) for item in body["data"])
    elif isinstance(body.get("data"), list):
        body["data"] = [{"key": i.get("key", ""), "value": i.get("value", "")} for i in body["data"]]
    data["body"] = body
    timeout = data.get("timeout") or {}
    if isinstance(timeout, dict) and timeout.get("read_timeout"):
        data["timeout_s"] = float(timeout["read_timeout"])
    data.pop("timeout", None)
    return data


def _retrieval(data: dict[str, Any]) -> dict[str, Any]:
    cfg = data.get("multiple_retrieval_config") or data.get("single_retrieval_config") or {}
    weights = cfg.pop("weights", None) or {}
    cfg["vector_weight"] = (weights.get("vector_setting") or {}).get("vector_weight", 0.0)
    cfg["keyword_weight"] = (weights.get("keyword_setting") or {}).get("keyword_weight", 0.0)
    if cfg.get("top_k") is None:
        cfg.pop("top_k", None)
    data["multiple_retrieval_config"] = cfg
    return data


def _agent(data: dict[str, Any]) -> dict[str, Any]:
    params = {k: (v or {}).get("value") for k, v in (data.get("agent_parameters") or {}).items()}
    model = params.get("model") or {}
    tools = [{"tool_name": t.get("tool_name") or t.get("name", ""), "description": t.get("description") or ""}
             for t in params.get("tools") or [] if isinstance(t, dict)]
    strategy = "react" if "react" in str(data.get("agent_strategy_name", "")).lower() else "function_calling"
    return {"type": "agent", "title": data.get("title", ""),
            "model": {"provider": model.get("provider", ""), "name": model.get("model") or model.get("name", ""),
                      "completion_params": model.get("completion_params") or {}},
            "instruction": params.get("instruction") or "", "query": params.get("query") or "{{#sys.query#}}",
            "tools": tools, "strategy": strategy, "max_iterations": params.get("maximum_iterations") or 5}


# Dify's form inputs by type -> Loom's field types (a type Loom has no widget for is a text).
_FIELD_TYPES = {"text_input": "text", "text-input": "text", "paragraph": "paragraph", "select": "select",
                "number": "number", "checkbox": "boolean", "boolean": "boolean"}
# Branch handles Dify spells otherwise (its human-input's timeout branch).
_DIFY_HANDLES = {"__timeout": "timeout"}


def _handle(name: str) -> str:
    return _DIFY_HANDLES.get(name, name)


def _human_input(data: dict[str, Any]) -> dict[str, Any]:
    """Dify's `inputs` ({type, output_variable_name, default}) become Loom's `fields`; its
    delivery methods (web app, e-mail) have no Loom counterpart: answers come through the
    service API or the console."""
    fields = []
    for item in data.get("inputs") or []:
        if not isinstance(item, dict):
            continue
        default = item.get("default")
        if isinstance(default, dict):  # Dify: {type: constant|variable, value|selector}
            default = default.get("value") if default.get("type", "constant") == "constant" else None
        field = {"name": item.get("output_variable_name") or item.get("variable") or "",
                 "type": _FIELD_TYPES.get(str(item.get("type", "")), "text"),
                 "label": item.get("label") or item.get("output_variable_name") or "",
                 "required": bool(item.get("required", True)), "default": default}
        if item.get("options"):
            field["options"] = [o if isinstance(o, str) else str((o or {}).get("value", "")) for o in item["options"]]
        fields.append(field)
    out = {k: v for k, v in data.items() if k not in ("inputs", "delivery_methods", "recipients_spec",
                                                      "message_template", "debug_mode")}
    out["fields"] = fields
    return out


_MAPPERS = {"if-else": _if_else, "assigner": _assigner, "http-request": _http,
            "knowledge-retrieval": _retrieval, "agent": _agent, "human-input": _human_input}
