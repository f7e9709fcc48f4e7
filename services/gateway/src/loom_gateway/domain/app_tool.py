"""A published app seen as one MCP tool: its name, description and the JSON schema of its
arguments, and the tool result made from the run's blocking answer.

A workflow's (and a completion app's) start inputs become the schema's properties; a chat app
(chat, chatflow, agent) takes `query` besides. File inputs cannot travel as MCP arguments: a
required one is refused at call time by the same input check as the service API.
"""

from __future__ import annotations

import json
import re
from typing import Any

from loom_common.dsl.flow_nodes import InputVariable
from loom_gateway.domain import dsl
from loom_gateway.store.apps import PublishedApp

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def tool_name(app: PublishedApp) -> str:
    """The app's name as an MCP tool name ([A-Za-z0-9_-], at most 64 characters)."""
    return _UNSAFE.sub("_", app.name).strip("_")[:64] or "app"


def run_kind(app: PublishedApp) -> str:
    return "chat" if app.mode in dsl.CHAT_MODES else "completion" if app.mode == "completion" else "workflow"


def _property(v: InputVariable) -> dict[str, Any] | None:
    prop: dict[str, Any]
    if v.type in ("text-input", "paragraph"):
        prop = {"type": "string"}
        if v.max_length:
            prop["maxLength"] = v.max_length
    elif v.type == "select":
        prop = {"type": "string", "enum": list(v.options)} if v.options else {"type": "string"}
    elif v.type == "number":
        prop = {"type": "number"}
    elif v.type == "checkbox":
        prop = {"type": "boolean"}
    elif v.type == "json_object":
        prop = {"type": "object"}
    else:  # file, file-list: no way to pass an upload as an MCP argument
        return None
    if v.label:
        prop["description"] = v.label
    if v.default is not None:
        prop["default"] = v.default
    return prop


def input_schema(app: PublishedApp) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    if run_kind(app) == "chat":
        props["query"] = {"type": "string", "minLength": 1, "maxLength": 100_000,
                          "description": "the user's message to the app"}
        required.append("query")
    for v in app.form:
        prop = _property(v)
        if prop is None or v.variable in props:
            continue
        props[v.variable] = prop
        if v.required:
            required.append(v.variable)
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def description(app: PublishedApp) -> str:
    what = {"chat": "Ask the chat app", "completion": "Run the completion app", "workflow": "Run the workflow"}
    return f"{what[run_kind(app)]} '{app.name}' (a Loom app): returns its answer" + \
        (" and outputs." if run_kind(app) == "workflow" else ".")


def split_arguments(app: PublishedApp, arguments: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(query, inputs) of a call: `query` is the chat's message, the rest the app's inputs."""
    if run_kind(app) == "chat":
        rest = {k: v for k, v in arguments.items() if k != "query"}
        return arguments.get("query"), rest
    return arguments.get("query") if app.mode == "completion" else None, arguments


def result_of(app: PublishedApp, body: dict[str, Any]) -> tuple[str, dict[str, Any] | None, bool]:
    """(text, structured content, is_error) from the run's blocking answer (the service API's body)."""
    if "data" in body and "workflow_run_id" in body:  # a workflow run
        data = body["data"]
        if data.get("status") != "succeeded":
            return f"the workflow {data.get('status')}: {data.get('error') or 'no error message'}", None, True
        outputs = data.get("outputs") or {}
        return json.dumps(outputs, ensure_ascii=False), outputs, False
    return body.get("answer") or "", None, False
