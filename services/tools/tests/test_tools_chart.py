"""chart.render through the executor, in process (built-ins only, no database): real vl-convert
in a real bounded child process."""

from __future__ import annotations

import base64
import json

import pytest

from loom_tools.builtins import BuiltinRunner, catalog
from loom_tools.builtins import chart as chart_mod
from loom_tools.domain.executor import Executor
from loom_tools.domain.types import Call

BAR = {"mark": "bar", "encoding": {"x": {"field": "month", "type": "ordinal"},
                                   "y": {"field": "revenue_eur", "type": "quantitative"}}}
COLUMNS = [{"name": "month", "type": None}, {"name": "revenue_eur", "type": None}]  # the SQL tool's shape
ROWS = [["2024-01", 1200.5], ["2024-02", 1800.0], ["2024-03", None]]


@pytest.fixture
def executor() -> Executor:
    builtins = {name: spec for name, (spec, _) in catalog().items()}
    return Executor(None, builtins, {"builtin": BuiltinRunner()}, None)


def _payload(url: str) -> bytes:
    head, _, data = url.partition(",")
    assert head.endswith(";base64")
    return base64.b64decode(data)


async def test_a_chart_of_sql_rows_renders_to_svg_and_png(executor) -> None:
    svg = await executor.invoke(Call("t1", "chart.render", {"spec": BAR, "rows": ROWS, "columns": COLUMNS,
                                                            "title": "Revenue per month"}))
    assert svg.ok, svg.error_message
    file = svg.result["file"]
    assert file["filename"] == "chart.svg" and file["mime_type"] == "image/svg+xml"
    body = _payload(file["url"])
    assert body.startswith(b"<svg") and len(body) == file["size"] and b"2024-02" in body
    assert svg.result["markdown"].startswith("![Revenue per month](data:image/svg+xml;base64,")

    fenced = "```json\n" + json.dumps(BAR) + "\n```"  # as a model writes it
    text = await executor.invoke(Call("t1", "chart.render", {"spec": fenced, "rows": ROWS, "columns": COLUMNS}))
    assert text.ok and _payload(text.result["file"]["url"]).startswith(b"<svg"), text

    png = await executor.invoke(Call("t1", "chart.render", {"spec": BAR, "format": "png",
                                                            "rows": [{"month": "a", "revenue_eur": 1}]}))
    assert png.ok, png.error_message
    assert png.result["file"]["mime_type"] == "image/png"
    assert _payload(png.result["file"]["url"]).startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(("args", "field"), [
    ({"spec": {**BAR, "data": {"url": "file:///etc/passwd"}}, "rows": [{"a": 1}]}, "spec"),
    ({"spec": {"layer": [{"mark": "image", "encoding": {"url": {"value": "http://127.0.0.1/x.png"}}}]},
      "rows": [{"a": 1}]}, "spec"),
    ({"spec": {**BAR, "transform": [{"sequence": {"start": 0, "stop": 1}, "data": {}}]}, "rows": [{"a": 1}]}, "spec"),
    ({"spec": BAR, "rows": []}, "rows"),
    ({"spec": "SELECT 1", "rows": [{"a": 1}]}, "spec"),
    ({"spec": "[1, 2]", "rows": [{"a": 1}]}, "spec"),
    ({"spec": BAR, "rows": [[1, 2]]}, "columns"),
    ({"spec": BAR, "rows": [[1]], "columns": ["month", "revenue_eur"]}, "rows"),
    ({"spec": BAR, "rows": [{"a": 1}] * (chart_mod.MAX_ROWS + 1)}, "rows"),
    ({"spec": BAR, "rows": [{"a": 1}], "format": "gif"}, "format"),
])
async def test_chart_refuses_external_data_and_bad_rows(executor, args, field) -> None:
    out = await executor.invoke(Call("t1", "chart.render", args))
    assert not out.ok and out.error_code == "invalid_arguments" and out.error_field == field, out


async def test_a_spec_that_exhausts_memory_dies_in_its_child(executor) -> None:
    # A data generator is refused up front; a fold that multiplies rows is not, so it must hit
    # the child's heap cap and come back as a tool error (the service lives on).
    rows = [{"k": i, **{f"c{j}": j for j in range(10)}} for i in range(2000)]
    spec = {"mark": "point", "transform": [{"fold": [f"c{j}" for j in range(10)]},
                                           {"calculate": "pad(datum.key, 200000, 'x')", "as": "big"}],
            "encoding": {"x": {"field": "big", "type": "nominal"}, "y": {"field": "value", "type": "quantitative"}}}
    out = await executor.invoke(Call("t1", "chart.render", {"spec": spec, "rows": rows}))
    assert not out.ok and out.error_code in ("upstream_error", "timeout", "response_too_large"), out
    assert "vl_convert" not in out.error_message  # a message, not the child's C stack
    ok = await executor.invoke(Call("t1", "chart.render", {"spec": BAR, "rows": ROWS, "columns": COLUMNS}))
    assert ok.ok
