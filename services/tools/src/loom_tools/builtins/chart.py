"""chart.render: a Vega-Lite spec plus the rows to draw, rendered to SVG or PNG.

The rows come from the caller (typically an SQL tool's result): they are put into the spec as
inline `data.values`, in one of two shapes, objects (`[{"month": "2024-01", "revenue": 10}]`)
or the SQL tool's arrays with `columns`. The spec may not name data of its own: no `data`, no
`url` anywhere (vl-convert would otherwise read files and URLs for it).

Rendering runs in a child process under `loom_common.bounded` (vl-convert embeds V8): a spec that
loops or allocates dies there, not in the service. V8 reserves tens of GiB of address space up
front, so the child's address-space limit is off and its heap is capped by RLIMIT_DATA instead
(`chart_render.py`). The result is the chart as a data URL plus a markdown image: tools return
JSON, and the answer (a markdown message in the console) shows it inline.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from loom_common.bounded import BoundedFailure, BoundedTimeout, BoundedTooLarge, Bounds, call_bounded
from loom_tools.domain.types import ToolSpec
from loom_tools.errors import InvalidArguments, ResponseTooLarge, ToolTimeout, UpstreamError

MAX_ROWS = 5000
MAX_COLUMNS = 50
MAX_SPEC_BYTES = 64 * 1024
MAX_DATA_BYTES = 2 * 1024 * 1024
MAX_CHART_BYTES = 2 * 1024 * 1024
# V8's address-space reservation is why memory_mb is this large: the real cap is data_mb.
BOUNDS = Bounds(memory_mb=1 << 22, cpu_s=15, wall_s=30.0, max_output_bytes=MAX_CHART_BYTES * 4 // 3 + 64)
DATA_MB = 768   # the engine itself needs 512-768 MiB of it to start (measured: 512 aborts)
MIME = {"svg": "image/svg+xml", "png": "image/png"}

PARAMETERS = {
    "type": "object",
    "properties": {
        # An object, or its JSON text as a model writes it (fenced in ```json or not).
        "spec": {"type": ["object", "string"], "maxLength": MAX_SPEC_BYTES,
                 "description": "a Vega-Lite v5 spec without data (mark, encoding, title...)"},
        "rows": {"type": "array", "maxItems": MAX_ROWS,
                 "items": {"type": ["object", "array"]},
                 "description": "the data: objects, or arrays in the order of `columns`"},
        "columns": {"type": "array", "maxItems": MAX_COLUMNS,
                    "items": {"anyOf": [{"type": "string"}, {"type": "object",
                                                              "properties": {"name": {"type": "string"}},
                                                              "required": ["name"]}]},
                    "description": "column names (or the SQL tool's column objects) when rows are arrays"},
        "format": {"type": "string", "enum": ["svg", "png"], "default": "svg"},
        "title": {"type": "string", "maxLength": 200},
    },
    "required": ["spec", "rows"],
    "additionalProperties": False,
}


def _refuse_external_data(node: Any, path: str = "spec") -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("data", "datasets", "url"):  # a data source, an image mark's URL, a generator
                raise InvalidArguments(f"argument 'spec': {path}.{key} is not allowed: the chart draws `rows` only",
                                       field="spec")
            _refuse_external_data(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _refuse_external_data(value, f"{path}[{i}]")


def _values(rows: list[Any], columns: list[Any] | None) -> list[dict[str, Any]]:
    if all(isinstance(r, dict) for r in rows):
        return rows
    if not columns:
        raise InvalidArguments("argument 'columns': required when rows are arrays", field="columns")
    names = [c["name"] if isinstance(c, dict) else c for c in columns]
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            raise InvalidArguments(f"argument 'rows': row {i} does not have the {len(names)} columns", field="rows")
        out.append(dict(zip(names, row, strict=True)))
    return out


def _spec_object(spec: Any) -> dict[str, Any]:
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("```"):  # a model's fenced block: drop the fence lines
            text = text.split("\n", 1)[1] if "\n" in text else ""
            text = text.rsplit("```", 1)[0]
        try:
            spec = json.loads(text)
        except ValueError as exc:
            raise InvalidArguments(f"argument 'spec': not JSON: {exc}", field="spec") from exc
    if not isinstance(spec, dict):
        raise InvalidArguments("argument 'spec': a Vega-Lite spec is a JSON object", field="spec")
    return spec


def build_spec(args: dict[str, Any]) -> dict[str, Any]:
    """The spec to render, with the rows inlined; InvalidArguments naming what is wrong."""
    spec = _spec_object(args["spec"])
    if len(json.dumps(spec)) > MAX_SPEC_BYTES:
        raise InvalidArguments(f"argument 'spec': larger than {MAX_SPEC_BYTES} bytes", field="spec")
    _refuse_external_data(spec)
    values = _values(args["rows"], args.get("columns"))
    if not values:
        raise InvalidArguments("argument 'rows': nothing to draw (the query returned no rows)", field="rows")
    full = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", **spec, "data": {"values": values}}
    if args.get("title") and "title" not in spec:
        full["title"] = args["title"]
    return full


async def render(args: dict[str, Any]) -> dict[str, Any]:
    fmt = args.get("format", "svg")
    body = json.dumps(build_spec(args)).encode()
    if len(body) > MAX_DATA_BYTES:
        raise InvalidArguments(f"argument 'rows': more than {MAX_DATA_BYTES} bytes of data", field="rows")
    try:
        text = await call_bounded("loom_tools.builtins.chart_render:render", body,
                                  {"fmt": fmt, "data_mb": DATA_MB}, BOUNDS)
    except BoundedTimeout as exc:
        raise ToolTimeout(f"rendering the chart: {exc.message}") from exc
    except BoundedTooLarge as exc:
        raise ResponseTooLarge(f"rendering the chart: {exc.message}") from exc
    except BoundedFailure as exc:
        if "exited with status" in exc.message:  # V8 aborts (SIGTRAP) when its heap reaches DATA_MB
            raise UpstreamError(f"the chart could not be rendered: the renderer ran out of its {DATA_MB} MiB "
                                "or crashed (fewer rows or a simpler spec)") from exc
        raise UpstreamError(f"the chart could not be rendered: {exc.message[:300]}") from exc
    payload = text.encode() if fmt == "svg" else base64.b64decode(text)
    if len(payload) > MAX_CHART_BYTES:
        raise ResponseTooLarge(f"the chart is larger than {MAX_CHART_BYTES} bytes")
    url = f"data:{MIME[fmt]};base64,{base64.b64encode(payload).decode()}"
    name = f"chart.{fmt}"
    return {"file": {"filename": name, "mime_type": MIME[fmt], "size": len(payload), "url": url},
            "markdown": f"![{args.get('title') or 'chart'}]({url})", "rows": len(args["rows"])}


TOOLS = [
    (ToolSpec("chart.render", "Render a Vega-Lite chart of the given rows to SVG or PNG; returns the chart as a "
              "file (a data URL) and a markdown image.", "builtin", PARAMETERS),
     render),
]
