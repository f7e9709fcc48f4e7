"""The report on disk: `report.json` (everything, the samples included) and `report.html` (one
self-contained page: tables side by side per subject, figures inline as PNG data URIs).

Every value that reaches the page goes through `html.escape`: model output is untrusted text.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

from loom_gateway.eval import plots


def write(report: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "report.json", out_dir / "report.html"
    json_path.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, html_path


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: object, pct: bool = False) -> str:
    if value is None:
        return "–"
    if pct:
        return f"{float(value) * 100:.1f}%"
    return f"{float(value):.1f}" if isinstance(value, float) else _e(value)


def _table(head: list[str], rows: list[list[str]]) -> str:
    """Cells arrive already escaped/formatted."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _verdicts(subjects: list[dict]) -> str:
    rows = []
    for s in subjects:
        for v in s.get("verdicts", []):
            mark = {True: '<span class="ok">pass</span>', False: '<span class="bad">fail</span>',
                    None: "not measured"}[v["pass"]]
            better = "≥" if v["higher_is_better"] else "≤"
            rows.append([_e(s["label"]), _e(v["metric"]), _e(v["channel"]), _num(v["value"]),
                         f"{better} {_num(v['threshold'])}", mark])
    return _table(["subject", "metric", "channel", "value", "threshold", "verdict"], rows) if rows else \
        "<p>No thresholds set.</p>"


def _ttft(subjects: list[dict]) -> str:
    rows = []
    for s in subjects:
        for channel, levels in (s.get("ttft") or {}).items():
            for lv in levels.values():
                rows.append([_e(s["label"]), _e(channel), _e(lv["concurrency"]), _e(lv["requests"]),
                             _e(lv["errors"]), _num(lv["p50_ms"]), _num(lv["p95_ms"]), _num(lv["p99_ms"]),
                             _num(lv["mean_ms"])])
    return _table(["subject", "channel", "streams at once", "requests", "errors", "p50 ms", "p95 ms", "p99 ms",
                   "mean ms"], rows) if rows else "<p>Not measured.</p>"


def _retention(subjects: list[dict]) -> str:
    rows = [s for s in subjects if s.get("retention")]
    if not rows:
        return "<p>Not measured.</p>"
    ks = sorted({int(k) for s in rows for k in s["retention"]["per_k"]})
    body = []
    for k in ks:
        cells = [_e(k)]
        for s in rows:
            cell = s["retention"]["per_k"].get(str(k))
            cells.append(f"{_num(cell['share'], pct=True)} ({cell['recalled']}/{cell['asked']})" if cell else "–")
        body.append(cells)
    head = ["k"] + [f"{s['label']} ({s['retention']['channel']})" for s in rows]
    return _table(head, body)


def _tools(subjects: list[dict]) -> str:
    rows = [s for s in subjects if s.get("tool_calls")]
    skipped = [f"<p>{_e(s['label'])}: {_e(s['tool_calls_skipped'])}</p>" for s in subjects
               if s.get("tool_calls_skipped")]
    if not rows:
        return "".join(skipped) or "<p>Not measured.</p>"
    keys = ["cases", "parse_rate", "schema_valid_rate", "right_function_rate", "exact_match_rate"]
    body = [[_e(k.replace("_", " "))] + [_num(s["tool_calls"][k], pct=k != "cases") for s in rows] for k in keys]
    summary = _table(["", *[s["label"] for s in rows]], body)
    cats = sorted({c for s in rows for c in s["tool_calls"]["by_category"]})
    cat_rows = [[_e(c)] + [_num((s["tool_calls"]["by_category"].get(c) or {}).get("exact_match_rate"), pct=True)
                           for s in rows] for c in cats]
    per_cat = _table(["category (exact match)", *[s["label"] for s in rows]], cat_rows)
    failures = []
    for s in rows:
        bad = [r for r in s["tool_calls"]["results"] if not r["exact"]][:40]
        items = "".join(f"<li><code>{_e(r['id'])}</code> {_e(r['error_type'])}: {_e(r['error'])}</li>" for r in bad)
        failures.append(f"<details><summary>{_e(s['label'])}: {len(bad)} shown of the cases not matched"
                        f"</summary><ul>{items}</ul></details>")
    return summary + per_cat + "".join(failures) + "".join(skipped)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}.ok{color:#080;font-weight:600}.bad{color:#b00;font-weight:600}
img{max-width:100%;margin:.5em 0}code{font-size:.9em}
"""


def render_html(report: dict) -> str:
    subjects = report.get("subjects", [])
    figures = plots.all_figures(subjects) if plots.available() else {}
    note = "" if plots.available() else "<p><em>Figures need matplotlib: pip install 'loom-gateway[eval]'.</em></p>"

    def fig(key: str, alt: str) -> str:
        return f'<img alt="{_e(alt)}" src="{figures[key]}">' if key in figures else ""

    suite = report.get("suite", {})
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.get("started_at", 0)))
    labels = ", ".join(s["label"] for s in subjects)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>loom eval: {_e(suite.get('name'))}</title>
<style>{_STYLE}</style></head><body>
<h1>loom eval · suite {_e(suite.get('name'))}</h1>
<p>{_e(suite.get('description'))}</p>
<p>Started {_e(started)}, took {_e(report.get('duration_s'))} s. Subjects: {_e(labels)}.</p>
<p><code>{_e(report.get('command'))}</code></p>{note}
<h2>Verdicts</h2>{_verdicts(subjects)}
<h2>Time to first token</h2>{_ttft(subjects)}{fig('ttft', 'TTFT distribution')}
<h2>Multi-turn context retention</h2>{_retention(subjects)}{fig('retention', 'share recalled per k')}
{fig('retention_cases', 'recalled per case')}
<h2>Tool-call argument accuracy</h2>{_tools(subjects)}{fig('tool_categories', 'per category')}
{fig('tool_cases', 'per case')}
</body></html>
"""
