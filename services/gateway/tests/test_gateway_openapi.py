"""The served OpenAPI schema is complete: a valid OpenAPI document whose every operation names
its permission, declares its path parameters, and documents the errors the gateway really sends
(Dify's shape; no FastAPI 422), with the streaming answers of the run endpoints."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from loom_gateway.app import build
from loom_gateway.settings import GatewaySettings

ADMIN = {"/healthz", "/readyz", "/metrics"}


def test_openapi_schema_is_complete(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LOOM_HOME", str(tmp_path))
    spec = build(GatewaySettings()).http.openapi()
    validate(spec)
    ops = [(m, p, o) for p, item in spec["paths"].items() for m, o in item.items()]
    assert len(ops) > 80
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert set(spec["components"]["schemas"]["Error"]["required"]) == {"code", "message", "status"}
    for method, path, op in ops:
        where = f"{method.upper()} {path}"
        assert op.get("summary") or op.get("description"), where
        assert "422" not in op["responses"], where
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{([^}]+)}", path)), where
        if path in ADMIN:
            continue
        assert op.get("x-loom-perm"), where
        errors = [code for code in op["responses"] if code.startswith("4")]
        assert errors or (op["x-loom-perm"] == "public" and not op.get("parameters")), where
        for code in errors:
            assert op["responses"][code]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}, where
        if op["x-loom-perm"] != "public":
            assert {"401", "403"} <= set(op["responses"]), where
        if path.startswith("/v1/") and op["x-loom-perm"] != "public":
            assert "Retry-After" in op["responses"]["429"]["headers"], where
    for path in ("/v1/chat-messages", "/v1/completion-messages", "/v1/workflows/run", "/v1/chat/completions"):
        content = spec["paths"][path]["post"]["responses"]["200"]["content"]
        assert {"text/event-stream", "application/json"} <= set(content), path
    assert spec["paths"]["/v1/workflows/run"]["post"]["responses"]["200"]["content"]["application/json"][
        "schema"] == {"$ref": "#/components/schemas/WorkflowRun"}
