"""`loom`: the platform's user command line. `loom eval` measures a model or an app:

    loom eval --model gemma3:270m                        # inference's OpenAI API on :11434
    loom eval --model gemma3:270m --gateway-url http://127.0.0.1:8080 --app-key app-...
    loom eval --gateway-url http://127.0.0.1:8080 --app-key app-...   # an app alone
    loom eval --model gpt-4o-mini --base-url https://api.example.com/v1 --api-key-env OPENAI_API_KEY
    loom eval --model gemma3:270m --compare qwen2.5:1.5b --suite small --out eval-report

It writes OUT/report.json and OUT/report.html and prints the summary tables. Exit status: 0,
or 1 with --strict when a threshold of the suite is missed, 2 for bad options or files.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from loom_gateway.eval import report as reports
from loom_gateway.eval.runner import Subject, TargetUnusable, run_report
from loom_gateway.eval.suite import SuiteError, check_files, load_suite, load_thresholds, shipped_suites
from loom_gateway.eval.targets import DifyAppTarget, OpenAITarget

app = typer.Typer(help="Loom's command line.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)

DEFAULT_BASE_URL = "http://127.0.0.1:11434/v1"


@app.callback()
def _root() -> None:
    """Loom's command line (`loom eval --help`)."""


def _secret(value: str | None, env_name: str | None) -> str | None:
    """A key from --...-env (the name of an environment variable) wins over nothing; keys on the
    command line show in `ps`, so the env form is the one the docs teach."""
    if env_name:
        found = os.environ.get(env_name)
        if not found:
            raise typer.BadParameter(f"environment variable {env_name} is not set")
        return found
    return value


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def print_summary(report: dict) -> None:
    out = Console()
    subjects = report["subjects"]
    if any(s.get("ttft") for s in subjects):
        t = Table(title="Time to first token (ms)")
        for col in ("subject", "channel", "streams", "n", "errors", "p50", "p95", "p99"):
            t.add_column(col, justify="left" if col in ("subject", "channel") else "right")
        for s in subjects:
            for ch, levels in (s.get("ttft") or {}).items():
                for lv in levels.values():
                    t.add_row(s["label"], ch, str(lv["concurrency"]), str(lv["requests"]), str(lv["errors"]),
                              _ms(lv["p50_ms"]), _ms(lv["p95_ms"]), _ms(lv["p99_ms"]))
        out.print(t)
    rows = [s for s in subjects if s.get("retention")]
    if rows:
        t = Table(title="Context retention: share recalled at turn k")
        t.add_column("k", justify="right")
        for s in rows:
            t.add_column(s["label"], justify="right")
        for k in rows[0]["retention"]["turns"]:
            t.add_row(str(k), *[_pct(s["retention"]["per_k"][str(k)]["share"]) for s in rows])
        out.print(t)
    rows = [s for s in subjects if s.get("tool_calls")]
    if rows:
        t = Table(title=f"Tool-call arguments ({rows[0]['tool_calls']['cases']} cases)")
        t.add_column("rate")
        for s in rows:
            t.add_column(s["label"], justify="right")
        for key in ("parse_rate", "schema_valid_rate", "right_function_rate", "exact_match_rate"):
            t.add_row(key.replace("_", " "), *[_pct(s["tool_calls"][key]) for s in rows])
        out.print(t)
    failed = [(s["label"], v) for s in subjects for v in s["verdicts"] if v["pass"] is False]
    for label, v in failed:
        out.print(f"[red]threshold missed[/red] {label} {v['metric']} ({v['channel']}): {v['value']} "
                  f"vs {v['threshold']}")


@app.command("eval")
def eval_command(
    model: str = typer.Option(None, "--model", "-m", help="the model to judge, by the name its API knows"),
    base_url: str = typer.Option(DEFAULT_BASE_URL, help="OpenAI-compatible API of the model "
                                 "(inference: http://HOST:11434/v1; a remote provider's /v1)"),
    api_key_env: str = typer.Option(None, help="name of the environment variable holding that API's key"),
    gateway_url: str = typer.Option(None, help="the gateway (http://HOST:PORT): measure through it too"),
    app_key_env: str = typer.Option("LOOM_APP_KEY", help="environment variable holding the app key"),
    gateway_api: str = typer.Option("app", help="through the gateway: 'app' (the key's app, Dify API) or "
                                    "'openai' (the gateway's /v1/chat/completions with --model)"),
    compare: str = typer.Option(None, help="a second model, judged side by side in the same report"),
    compare_base_url: str = typer.Option(None, help="its API (default: --base-url)"),
    compare_api_key_env: str = typer.Option(None, help="environment variable holding its key"),
    suite: str = typer.Option("full", help=f"a shipped suite ({', '.join(shipped_suites())}) or a suite file"),
    thresholds: Path = typer.Option(None, help="a thresholds file (YAML/JSON) replacing the suite's"),
    concurrency: int = typer.Option(None, "--concurrency", "-n", min=1, max=256,
                                    help="N, the concurrent streams of the TTFT burst (default: the suite's)"),
    out: Path = typer.Option(Path("eval-report"), help="folder for report.json and report.html"),
    timeout: float = typer.Option(300.0, help="seconds one request may take"),
    strict: bool = typer.Option(False, help="exit 1 when a threshold is missed"),
) -> None:
    """Run a suite (TTFT, context retention, tool-call accuracy) and write the JSON + HTML report."""
    if gateway_api not in ("app", "openai"):
        raise typer.BadParameter("--gateway-api is 'app' or 'openai'")
    if not model and not gateway_url:
        raise typer.BadParameter("give --model, --gateway-url, or both")
    if gateway_api == "openai" and gateway_url and not model:
        raise typer.BadParameter("--gateway-api openai needs --model")
    try:
        chosen = load_suite(suite)
        if thresholds is not None:
            chosen.thresholds = load_thresholds(thresholds)
        check_files(chosen)
    except SuiteError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc

    subjects: list[Subject] = []
    direct = OpenAITarget(base_url, model, _secret(None, api_key_env), timeout_s=timeout) if model else None
    via = None
    if gateway_url:
        app_key = _secret(None, app_key_env)
        if not app_key:
            raise typer.BadParameter(f"set {app_key_env} to the app's key to go through the gateway")
        via = (DifyAppTarget(gateway_url, app_key, label="app", timeout_s=timeout) if gateway_api == "app"
               else OpenAITarget(gateway_url.rstrip("/") + "/v1", model, app_key, timeout_s=timeout))
    subjects.append(Subject(model or "app", direct, via))
    if compare:
        other = OpenAITarget(compare_base_url or base_url, compare,
                             _secret(None, compare_api_key_env) or (_secret(None, api_key_env) if not
                                                                   compare_base_url else None), timeout_s=timeout)
        subjects.append(Subject(compare, other))

    async def run() -> dict:
        try:
            with console.status("running the suite") as status:
                def progress(line: str) -> None:
                    console.log(line)
                    status.update(line)
                return await run_report(subjects, chosen, concurrency=concurrency, progress=progress,
                                        command=" ".join(shlex.quote(a) for a in ["loom", *sys.argv[1:]]))
        finally:
            for s in subjects:
                await s.aclose()

    try:
        result = asyncio.run(run())
    except TargetUnusable as exc:
        console.print(f"[red]cannot evaluate {exc}[/red]")
        raise typer.Exit(2) from exc
    json_path, html_path = reports.write(result, out)
    print_summary(result)
    console.print(f"wrote {json_path} and {html_path}")
    if strict and any(v["pass"] is False for s in result["subjects"] for v in s["verdicts"]):
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
