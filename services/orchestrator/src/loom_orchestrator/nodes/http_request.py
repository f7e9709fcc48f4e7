"""http-request: an HTTP call through the tools service's `http.request` (its SSRF guard,
size and time limits apply). Text fields may hold `{{#...#}}` references."""

from __future__ import annotations

import json
from typing import Any

from loom_common.dsl.flow_nodes import HttpRequestData
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node
from loom_orchestrator.engine.variables import to_text


def _lines(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            if k.strip():
                out[k.strip()] = v.strip()
    return out


class HttpRequestNode(Node[HttpRequestData]):
    type, version = "http-request", "1"

    async def run(self, data: HttpRequestData, ctx: NodeContext) -> NodeResult:
        if ctx.services.tools is None:
            raise RuntimeError("no tools service configured for http-request nodes")
        render = ctx.pool.render
        args: dict[str, Any] = {"url": render(data.url), "method": data.method.upper()}
        if data.headers:
            args["headers"] = {k: render(v) for k, v in _lines(data.headers).items()}
        if data.params:
            args["params"] = {k: render(v) for k, v in _lines(data.params).items()}
        body = data.body
        if body.type == "json" and isinstance(body.data, str) and body.data.strip():
            try:
                args["json"] = json.loads(render(body.data))
            except json.JSONDecodeError as exc:
                raise ValueError(f"body.data: not JSON after substitution: {exc}") from None
        elif body.type == "raw-text" and isinstance(body.data, str):
            args["body"] = render(body.data)
        elif body.type in ("form-data", "x-www-form-urlencoded") and isinstance(body.data, list):
            from urllib.parse import urlencode

            pairs = [(str(i.get("key", "")), render(str(i.get("value", "")))) for i in body.data]
            args["body"] = urlencode(pairs)
            args.setdefault("headers", {})["Content-Type"] = "application/x-www-form-urlencoded"
        result = await ctx.services.tools.invoke(
            "http.request",
            args,
            tenant_id=ctx.run.tenant_id,
            run_id=ctx.run.run_id,
            node_id=ctx.node_id,
            timeout_s=ctx.timeout_s,
        )
        result = result or {}
        return NodeResult(
            inputs=args,
            outputs={
                "status_code": result.get("status"),
                "body": to_text(result.get("body")),
                "headers": result.get("headers") or {},
            },
        )
