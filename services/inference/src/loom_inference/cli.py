"""`llm-engine`: the Ollama-like command line of the inference service.

    llm-engine serve                 run the service (gRPC + the 11434 HTTP APIs)
    llm-engine library list          catalog: size, quantization, RAM/VRAM needed, fits here?
    llm-engine pull SOURCE           registry name, hf.co/..., http(s) URL, local path, pkg:<package>
    llm-engine list | ps | show M | rm M | stop M
    llm-engine create NAME -f Modelfile | cp SRC DST
    llm-engine run MODEL [PROMPT]    answer once (stdin piped: the prompt); no prompt: the shell
    llm-engine shell MODEL           multi-turn chat: /set, /show, /load, /clear, /stats, /bye

`pull`, `list` and `rm` work on the local model store without a server; `ps`, `show`, `run`
and `shell` talk to a running server (--host, default $LOOM_INFERENCE_URL or 127.0.0.1:11434).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from loom_inference import library, modelfile
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
        False, "--platform", help="join the Loom platform (NATS + Postgres), as loom-inference does under make up"),
          bind: str = typer.Option(None, "--bind", help="HTTP and gRPC bind address (config: [network] bind_address)"),
          port: int = typer.Option(None, "--port", help="HTTP port (config: [network] port)"),
          grpc_port: int = typer.Option(None, "--grpc-port", help="gRPC port (config: grpc_port)"),
          config: Path = typer.Option(None, "--config", help="a config.toml instead of $LOOM_HOME's")) -> None:
    """Run the engine until Ctrl-C / SIGTERM: standalone (no NATS, no Postgres, state in files
    under $LOOM_HOME) unless --platform. Settings: these flags, then LOOM_INFERENCE_* variables,
    then $LOOM_HOME/inference/config.toml (or --config), then /etc/llm-engine/config.toml."""
    from loom_inference.api.access import BindRefused
    from loom_inference.app import build
    from loom_inference.settings import loom_home

    # One home for everything it writes (model store, the service-token secret), not the
    # working directory: under systemd that is /, read-only.
    os.environ.setdefault("LOOM_HOME", str(loom_home()))
    if config is not None:
        os.environ["LOOM_INFERENCE_CONFIG"] = str(config)
    flags = {k: v for k, v in {"http_host": bind, "http_port": port, "grpc_port": grpc_port}.items() if v is not None}
    settings = InferenceSettings(**flags)  # init arguments rank above the environment
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
    rows = [("gemma3:270m", "253 MB", "gemma3", "Q4_K_M", "(bundled)"),
            ("all-minilm:l6-v2", "90 MB", "bert", "F32", "(bundled)")]
    rows += [(m.name, _gb(m.size_bytes), m.family, m.quantization, m.sha256[:12])
             for m in ModelStore(InferenceSettings().model_store).list()]
    columns = [Column(h, keep=h == "NAME", priority=p, cells=[r[i] for r in rows])
               for i, (h, p) in enumerate((("NAME", 0), ("SIZE", 3), ("FAMILY", 1), ("QUANT", 0), ("DIGEST", 2)))]
    console.print(fit_table(columns, console.width))


@app.command()
def rm(model: str) -> None:
    """Remove a model from the local store."""
    from loom_inference.router.factory import kept_blobs

    store = ModelStore(InferenceSettings().model_store)
    if not store.remove(model, kept_blobs(store)):
        console.print(f"[red]Error:[/red] model {model!r} not found")
        raise typer.Exit(1)
    console.print(f"deleted '{model}'")


def _until(expires_at: str) -> str:
    """Ollama's UNTIL column: "4 minutes from now", "Forever"."""
    try:
        when = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return expires_at
    left = (when - datetime.now(UTC)).total_seconds()
    if left > 100 * 365 * 86400:
        return "Forever"
    if left < 60:
        return "Less than a minute from now" if left > 0 else "Stopping..."
    minutes = left / 60
    return f"{minutes:.0f} minutes from now" if minutes < 120 else f"{minutes / 60:.0f} hours from now"


@app.command()
def ps(host: str = HostOpt) -> None:
    """Models loaded in the running server: memory, context, requests, when each unloads."""
    resp = _request("GET", host, "/api/ps")
    models = resp.json()["models"]
    columns = [Column("NAME", keep=True, cells=[m["name"] for m in models]),
               Column("SIZE", priority=3, cells=[_gb(m.get("size", 0)) for m in models]),
               Column("PROCESSOR", priority=0, cells=["100% GPU" if m.get("size_vram") else "100% CPU"
                                                      for m in models]),
               Column("CONTEXT", priority=1, cells=[str(m.get("context_length", "")) for m in models]),
               Column("RUNNING", priority=2, cells=[str(m.get("running", 0)) for m in models]),
               Column("UNTIL", keep=True, cells=[_until(m.get("expires_at", "")) for m in models])]
    console.print(fit_table(columns, console.width))


@app.command()
def stop(model: str, host: str = HostOpt) -> None:
    """Unload MODEL from the running server now (its memory is freed; the next request loads it)."""
    _request("POST", host, "/api/generate", json={"model": model, "keep_alive": 0})
    console.print(f"stopped '{model}'")


@app.command()
def create(name: str, file: Path = typer.Option(Path("Modelfile"), "-f", "--file", help="the Modelfile"),
           host: str = HostOpt) -> None:
    """Make model NAME from a Modelfile (FROM a model, a local .gguf or @sha256:..; PARAMETER, SYSTEM,
    TEMPLATE, MESSAGE, LICENSE). A local GGUF is uploaded to the server as a blob first."""
    try:
        spec = modelfile.parse(file.read_text())
    except OSError as exc:
        err_console.print(f"[red]Error:[/red] {exc}")
        raise typer.Exit(1) from exc
    except InferenceError as exc:
        err_console.print(f"[red]Error:[/red] {file}: {exc}")
        raise typer.Exit(1) from exc
    body: dict = {"model": name, "stream": True, "parameters": spec.parameters, "messages": spec.messages,
                  "license": spec.license, "system": spec.system, "template": spec.template}
    local = (file.parent / Path(spec.from_).expanduser()) if not spec.from_.startswith("@") else None
    if local is not None and local.is_file():
        body["files"] = {local.name: _upload_blob(local, host)}
    else:
        body["from"] = spec.from_
    body = {k: v for k, v in body.items() if v not in (None, [], {})}
    try:
        with httpx.stream("POST", _host(host) + "/api/create", json=body, headers=_auth(), timeout=600) as resp:
            if resp.status_code != 200:
                resp.read()
                _fail(resp)
            for line in resp.iter_lines():
                if line:
                    obj = json.loads(line)
                    if "error" in obj:
                        err_console.print(f"[red]Error:[/red] {obj['error']}")
                        raise typer.Exit(1)
                    console.print(obj.get("status", ""))
    except httpx.TransportError as exc:
        raise _unreachable(host, exc) from exc


def _upload_blob(path: Path, host: str | None) -> str:
    """Send a local file to the server's blob store (unless it has it); its digest."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    digest = f"sha256:{h.hexdigest()}"
    if _request("HEAD", host, f"/api/blobs/{digest}", ok=(200, 404)).status_code == 404:
        console.print(f"uploading {path.name}")
        with open(path, "rb") as f:
            _request("POST", host, f"/api/blobs/{digest}", ok=(200, 201), content=f)
    return digest


@app.command()
def cp(source: str, destination: str, host: str = HostOpt) -> None:
    """Copy model SOURCE to DESTINATION (the same weights and profile; nothing is duplicated)."""
    _request("POST", host, "/api/copy", json={"source": source, "destination": destination})
    console.print(f"copied '{source}' to '{destination}'")


def _fail(resp: httpx.Response) -> None:
    try:
        message = resp.json().get("error", resp.text)
    except ValueError:
        message = resp.text
    err_console.print(f"[red]Error:[/red] {message}")
    raise typer.Exit(1)


def _request(method: str, host: str | None, path: str, ok: tuple[int, ...] = (200,), **kwargs) -> httpx.Response:
    """One call to the running server; its error, or its absence, ends the command clearly."""
    try:
        resp = httpx.request(method, _host(host) + path, headers=_auth(), timeout=600, **kwargs)
    except httpx.TransportError as exc:
        raise _unreachable(host, exc) from exc
    if resp.status_code not in ok:
        _fail(resp)
    return resp


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
