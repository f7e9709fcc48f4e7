"""Parse an OpenAPI 3 document (prance + openapi-spec-validator) into tool specs.

One tool per operation, named `<prefix>.<operationId>`; its argument schema has one property
per path/query/header parameter and `body` for a JSON request body. Only internal `$ref`s
are accepted: resolving an external one would make the parser fetch arbitrary URLs, past
the SSRF guard.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urljoin

import prance
from prance.util.resolver import RESOLVE_INTERNAL

from loom_tools.domain.types import ToolSpec
from loom_tools.errors import InvalidArguments

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
PARAM_PLACES = ("path", "query", "header")


def _refuse_external_refs(node: Any, where: str = "#") -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise InvalidArguments(f"argument 'spec': external $ref {ref!r} at {where} is not allowed",
                                   field="spec")
        for k, v in node.items():
            _refuse_external_refs(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _refuse_external_refs(v, f"{where}/{i}")


def parse(text: str) -> dict[str, Any]:
    """A validated OpenAPI 3 document with every internal $ref resolved."""
    try:
        raw = json.loads(text)
    except ValueError:
        from loom_common import untrusted_yaml  # YAML specs are common: no aliases, size capped

        try:
            raw = untrusted_yaml.load(text, field="spec")
        except untrusted_yaml.UntrustedYamlError as exc:
            raise InvalidArguments(f"argument 'spec': neither JSON nor YAML: {exc.message}", field="spec") from None
    if not isinstance(raw, dict) or not str(raw.get("openapi", "")).startswith("3."):
        raise InvalidArguments("argument 'spec': not an OpenAPI 3 document (no 'openapi: 3.x')", field="spec")
    _refuse_external_refs(raw)
    try:
        parser = prance.ResolvingParser(spec_string=json.dumps(raw), backend="openapi-spec-validator",
                                        resolve_types=RESOLVE_INTERNAL, strict=False)
    except Exception as exc:  # prance raises its own ValidationError and several others
        raise InvalidArguments(f"argument 'spec': invalid OpenAPI document: {str(exc)[:500]}", field="spec") from exc
    return parser.specification


def _tool_name(prefix: str, method: str, path: str, op: dict[str, Any]) -> str:
    base = op.get("operationId") or f"{method}_{path}"
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", base).strip("_.")
    return f"{prefix}.{base}"[:128]


def operations(doc: dict[str, Any], *, prefix: str, base_url: str,
               credentials: dict[str, Any] | None = None) -> list[ToolSpec]:
    specs: list[ToolSpec] = []
    for path, item in (doc.get("paths") or {}).items():
        shared = item.get("parameters", [])
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            params = {(p["name"], p["in"]): p for p in [*shared, *op.get("parameters", [])]}
            props: dict[str, Any] = {}
            required: list[str] = []
            places: list[dict[str, str]] = []
            for (name, place), p in params.items():
                if place not in PARAM_PLACES:
                    continue  # cookie parameters: not supported, and never required by our callers
                schema = dict(p.get("schema") or {"type": "string"})
                if p.get("description"):
                    schema.setdefault("description", p["description"])
                props[name] = schema
                places.append({"name": name, "in": place})
                if p.get("required") or place == "path":
                    required.append(name)
            body = (op.get("requestBody") or {})
            body_schema = ((body.get("content") or {}).get("application/json") or {}).get("schema")
            if body_schema is not None:
                props["body"] = body_schema
                if body.get("required"):
                    required.append("body")
            description = op.get("summary") or op.get("description") or f"{method.upper()} {path}"
            specs.append(ToolSpec(
                _tool_name(prefix, method, path, op), description[:1000], "openapi",
                {"type": "object", "properties": props, "required": required},
                {"method": method.upper(), "path": path, "base_url": base_url, "params": places,
                 "body": body_schema is not None},
                credentials))
    if not specs:
        raise InvalidArguments("argument 'spec': the document has no operations", field="spec")
    return specs


def base_url_of(doc: dict[str, Any], spec_url: str | None, override: str | None) -> str:
    """The API's root: the caller's override, else the first server (relative to the spec's URL)."""
    if override:
        return override
    servers = doc.get("servers") or [{"url": "/"}]
    url = servers[0].get("url", "/")
    if spec_url:
        return urljoin(spec_url, url)
    if not url.startswith(("http://", "https://")):
        raise InvalidArguments("argument 'base_url': the spec's server URL is relative; give base_url",
                               field="base_url")
    return url
