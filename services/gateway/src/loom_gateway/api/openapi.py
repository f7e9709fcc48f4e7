"""The served OpenAPI schema, completed with what FastAPI cannot infer from the routes:

- errors as the gateway sends them: Dify's `{code, message, status[, field]}` (`Error`) for
  400 (a bad parameter, named in `field`; FastAPI's 422 never happens here), 401/403 on gated
  routes, 404 where a path names something, 413 on bodies, 429 with `Retry-After` for API keys;
- the permission each route needs (`x-loom-perm`, the matrix in docs/rbac.md), and every path
  parameter (some are read by the permission gate, not by the handler);
- streaming answers: `text/event-stream` next to the blocking JSON of the run endpoints and the
  OpenAI chat completion, and the Dify payloads of the blocking calls (`ChatMessage`,
  `WorkflowRun`, see schemas.py); binary file previews; the Prometheus text of /metrics.

Built once per process, on the first request for it.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from loom_gateway.api import schemas

ERROR = {"$ref": "#/components/schemas/Error"}
_STATUS_TEXT = {400: "Invalid parameter (the body's `field` names it), or an app mode that does not fit the route",
                401: "No or an invalid token", 403: "The caller's role lacks the permission (`x-loom-perm`)",
                404: "Not found, or not the caller's workspace", 413: "The request body is too large",
                409: "Conflicts with what exists (e.g. a name in use)",
                429: "Rate limit, token quota or failed-login limit exceeded (see `Retry-After`)",
                502: "The service behind the gateway failed",
                503: "The service behind the gateway is unavailable, or overloaded: the run queue is full "
                     "(code `overloaded`, see `Retry-After`)",
                504: "The service behind the gateway (or the run) did not answer in time"}
_UPSTREAM = (502, 503, 504)
# Answers particular routes give beyond what their shape implies.
_EXTRA = {"setup.create": (403,), "auth.login": (401, 429), "auth.refresh": (401,), "invitations.accept": (404,),
          "openai.embeddings": (404, *_UPSTREAM), "openai.chat_completions": (404, *_UPSTREAM),
          "openai.models": _UPSTREAM, "service.chat": (404, 503, 504), "service.completion": (503, 504),
          "service.workflow_run": (503, 504), "service.workflow_run_version": (503, 504),
          "model_endpoints.create": (409,),
          "apps.draft_node_run": (504,), "models.pull": _UPSTREAM, "service.webhook": (401, 413, 429, 504),
          # a tag named in the body, not the path
          "datasets.tags.update": (404,), "datasets.tags.delete": (404,), "datasets.tags.bind": (404,)}
# Operations that stream Server-Sent Events when asked (`response_mode: streaming`, `stream: true`).
_STREAMS = {"service.chat": schemas.ChatMessage, "service.completion": schemas.ChatMessage,
            "service.workflow_run": schemas.WorkflowRun, "service.workflow_run_version": schemas.WorkflowRun,
            "service.run_events": None,
            "openai.chat_completions": None, "apps.draft_run": None, "models.pull": None}
_SSE = {"schema": {"type": "string", "description": "Server-Sent Events: `data: {json}` lines (Dify's event "
                   "names, or OpenAI chunks ending with `data: [DONE]`), `event: ping` keep-alives, an `id:` "
                   "(the run event's seq) for Last-Event-ID."}}


def _perm(route: APIRoute) -> str | None:
    for dep in route.dependant.dependencies:
        if hasattr(dep.call, "__perm__"):
            return dep.call.__perm__.value
    return (route.openapi_extra or {}).get("x-loom-perm")


def _schema_ref(spec: dict, model: type[BaseModel]) -> dict:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        spec["components"]["schemas"].setdefault(name, sub)
    spec["components"]["schemas"].setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _path_parameters(op: dict, path: str) -> None:
    """Declare every `{name}` of the path: the workspace id, for one, is read by the permission
    gate from the path rather than taken as a handler argument."""
    declared = {p["name"] for p in op.get("parameters", []) if p.get("in") == "path"}
    for name in re.findall(r"{([^}]+)}", path):
        if name not in declared:
            op.setdefault("parameters", []).append({"name": name, "in": "path", "required": True,
                                                    "schema": {"type": "string", "title": name}})


def _errors(op: dict, path: str, perm: str | None, method: str, name: str | None) -> None:
    responses = op["responses"]
    responses.pop("422", None)
    # Error codes a route declares itself (with its own description) get the Error body too.
    codes = set(_EXTRA.get(name or "", ())) | {int(c) for c in responses if c[:1] in ("4", "5")}
    if path.startswith("/v1/datasets"):  # the knowledge API is rag's, over gRPC
        codes |= {409, *_UPSTREAM}
    if op.get("parameters") or op.get("requestBody"):
        codes.add(400)
    if perm and perm != "public":
        codes |= {401, 403}
    if "{" in path:
        codes.add(404)
    if op.get("requestBody") or method in ("post", "put", "patch"):
        codes.add(413)
    if path.startswith("/v1/") and perm != "public":
        codes.add(429)
    for code in sorted(codes):
        entry = responses.setdefault(str(code), {"description": _STATUS_TEXT[code]})
        entry["content"] = {"application/json": {"schema": ERROR}}
        if code in (429, 503):
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}}


def build(routers: list[APIRouter], base: dict) -> dict:
    spec = base
    spec.setdefault("components", {}).setdefault("schemas", {})
    _schema_ref(spec, schemas.Error)
    for name in ("HTTPValidationError", "ValidationError"):
        spec["components"]["schemas"].pop(name, None)
    routes = {(m.lower(), r.path): r for router in routers for r in router.routes if isinstance(r, APIRoute)
              for m in r.methods}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            route = routes.get((method, path))
            perm = _perm(route) if route else None
            if perm:
                op["x-loom-perm"] = perm
            _path_parameters(op, path)
            _errors(op, path, perm, method, route.name if route else None)
            ok = op["responses"].get("200")
            if route is not None and route.name in _STREAMS and ok is not None:
                blocking = _STREAMS[route.name]
                content: dict[str, Any] = {"text/event-stream": _SSE}
                if blocking is not None:
                    content["application/json"] = {"schema": _schema_ref(spec, blocking)}
                elif route.name == "openai.chat_completions":
                    content["application/json"] = {"schema": {"type": "object", "description": "OpenAI's "
                                                              "chat.completion object (stream: false)"}}
                ok["content"] = content
            elif route is not None and route.name == "service.file_preview" and ok is not None:
                ok["content"] = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
            elif path == "/metrics" and ok is not None:
                ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
    return spec


def install(app: FastAPI, routers: list[APIRouter]) -> None:
    """`routers`: the gateway's own (FastAPI keeps included routes apart from `app.routes`)."""
    original = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = build(routers, original())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
