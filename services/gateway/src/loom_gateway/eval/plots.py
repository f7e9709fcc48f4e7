"""The report's figures, drawn with matplotlib (the `eval` extra) as PNG data URIs.

Without matplotlib, `available()` is False and the report says so in place of the figures: the
JSON and the tables do not depend on it.
"""

from __future__ import annotations

import base64
import io


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display; set before pyplot is imported
    import matplotlib.pyplot as plt

    return plt


def _uri(fig) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def ttft_distribution(subjects: list[dict]) -> str | None:
    """The empirical CDF of TTFT per subject, channel and concurrency."""
    series = [(f"{s['label']} · {ch} · c={lv['concurrency']}", sorted(lv["samples_ms"]))
              for s in subjects for ch, levels in (s.get("ttft") or {}).items() for lv in levels.values()
              if lv["samples_ms"]]
    if not series:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, xs in series:
        ax.step(xs, [(i + 1) / len(xs) for i in range(len(xs))], where="post", label=name)
    ax.axvline(500, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("time to first token (ms)")
    ax.set_ylabel("share of requests")
    ax.set_title("TTFT distribution (dotted: 500 ms)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _uri(fig)


def retention_curve(subjects: list[dict]) -> str | None:
    rows = [s for s in subjects if s.get("retention")]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for s in rows:
        per_k = s["retention"]["per_k"]
        ks = sorted(int(k) for k in per_k)
        ax.plot(ks, [per_k[str(k)]["share"] or 0 for k in ks], marker="o", label=s["label"])
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("turn k at which the fact is asked")
    ax.set_ylabel("share recalled")
    ax.set_title("Multi-turn context retention")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _uri(fig)


def retention_cases(subjects: list[dict]) -> str | None:
    """Per fact and k, recalled or not: a grid per subject."""
    rows = [s for s in subjects if s.get("retention")]
    if not rows:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(rows), figsize=(4.5 * len(rows), 3), squeeze=False)
    for ax, s in zip(axes[0], rows, strict=True):
        ret = s["retention"]
        facts, ks = ret["facts"], ret["turns"]
        hit = {(c["fact"], c["k"]): c["recalled"] for c in ret["conversations"]}
        grid = [[1.0 if hit.get((f, k)) else 0.0 for k in ks] for f in facts]
        ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(ks)), [str(k) for k in ks], fontsize=7)
        ax.set_yticks(range(len(facts)), facts, fontsize=7)
        ax.set_xlabel("k")
        ax.set_title(f"recalled per case: {s['label']}", fontsize=9)
    return _uri(fig)


def tool_categories(subjects: list[dict]) -> str | None:
    rows = [s for s in subjects if s.get("tool_calls")]
    if not rows:
        return None
    plt = _pyplot()
    cats = sorted({c for s in rows for c in s["tool_calls"]["by_category"]})
    fig, ax = plt.subplots(figsize=(max(6, len(cats) * 1.1), 3.5))
    width = 0.8 / (2 * len(rows))
    for i, s in enumerate(rows):
        by = s["tool_calls"]["by_category"]
        for j, (key, hatch) in enumerate((("schema_valid_rate", "//"), ("exact_match_rate", ""))):
            pos = [c + (2 * i + j) * width - 0.4 + width / 2 for c in range(len(cats))]
            ax.bar(pos, [by.get(c, {}).get(key) or 0 for c in cats], width, hatch=hatch,
                   label=f"{s['label']}: {key.replace('_rate', '').replace('_', ' ')}")
    ax.set_xticks(range(len(cats)), cats, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate")
    ax.set_title("Tool-call accuracy per category")
    ax.legend(fontsize=7)
    return _uri(fig)


def tool_cases(subjects: list[dict]) -> str | None:
    """Every case's outcome per subject: 3 exact, 2 schema-valid only, 1 parsed only, 0 not parsed."""
    rows = [s for s in subjects if s.get("tool_calls")]
    if not rows:
        return None
    plt = _pyplot()
    ids = [r["id"] for r in rows[0]["tool_calls"]["results"]]

    def level(r: dict) -> int:
        return 3 if r["exact"] else 2 if r["schema_valid"] else 1 if r["parsed"] else 0

    grid = []
    for s in rows:
        by_id = {r["id"]: level(r) for r in s["tool_calls"]["results"]}
        grid.append([by_id.get(i, 0) for i in ids])
    fig, ax = plt.subplots(figsize=(max(8, len(ids) * 0.09), 0.6 + 0.5 * len(rows)))
    ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=3, aspect="auto", interpolation="nearest")
    ax.set_yticks(range(len(rows)), [s["label"] for s in rows], fontsize=8)
    step = max(1, len(ids) // 30)
    ax.set_xticks(range(0, len(ids), step), ids[::step], rotation=90, fontsize=6)
    ax.set_title("Per case: green exact match, yellow schema-valid, orange parsed, red no valid call", fontsize=9)
    return _uri(fig)


def all_figures(subjects: list[dict]) -> dict[str, str]:
    figures = {"ttft": ttft_distribution(subjects), "retention": retention_curve(subjects),
               "retention_cases": retention_cases(subjects), "tool_categories": tool_categories(subjects),
               "tool_cases": tool_cases(subjects)}
    return {k: v for k, v in figures.items() if v}
