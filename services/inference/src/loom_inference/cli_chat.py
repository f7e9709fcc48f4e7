"""The conversation behind `llm-engine run` and `llm-engine shell`: one streamed answer, or an
interactive session with Ollama's slash commands.

    /set parameter NAME VALUE   an option of every later request (temperature, num_ctx, stop...)
    /set system TEXT            a system message before the history
    /set format json | /set noformat
    /show info|parameters|template|system|modelfile|license
    /load MODEL                 switch to MODEL (loaded now), history kept
    /clear   /stats   /bye
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx

from loom_inference.modelfile import PARAMETER_TYPES

HELP = ("Commands: /set parameter NAME VALUE, /set system TEXT, /set format json, /set noformat, "
        "/show info|parameters|template|system|modelfile|license, /load MODEL, /clear, /stats, /bye")


class ChatError(Exception):
    """The server refused a request (its message is for the user)."""


class ChatSession:
    def __init__(self, client: httpx.Client, model: str, *, options: dict | None = None,
                 fmt: str | None = None, out: Callable[[str], None] = print) -> None:
        self.client, self.model, self.fmt = client, model, fmt
        self.options: dict = dict(options or {})
        self.system: str | None = None
        self.history: list[dict] = []
        self.stats: dict | None = None
        self.out = out

    # ---- one answer ---------------------------------------------------------------

    def ask(self, text: str, *, echo: Callable[[str], None]) -> str:
        """Send `text` with the history, stream the answer through `echo`, keep both."""
        self.history.append({"role": "user", "content": text})
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + self.history
        body: dict = {"model": self.model, "messages": messages, "stream": True, "options": self.options}
        if self.fmt:
            body["format"] = self.fmt
        t0, first, parts, final = time.perf_counter(), 0.0, [], {}
        with self.client.stream("POST", "/api/chat", json=body) as resp:
            if resp.status_code != 200:
                self.history.pop()
                raise ChatError(_error(resp.read()))
            for raw in resp.iter_lines():
                if not raw:
                    continue
                obj = json.loads(raw)
                if "error" in obj:
                    self.history.pop()
                    raise ChatError(obj["error"])
                piece = (obj.get("message") or {}).get("content", "")
                if piece:
                    first = first or time.perf_counter()
                    parts.append(piece)
                    echo(piece)
                if obj.get("done"):
                    final = obj
        answer = "".join(parts)
        self.history.append({"role": "assistant", "content": answer})
        end = time.perf_counter()
        n = final.get("eval_count", 0)
        decode_s = final.get("eval_duration", 0) / 1e9 or (end - (first or end))
        self.stats = {"ttft_ms": round(((first or end) - t0) * 1000, 1),
                      "tok_s": round(n / decode_s, 1) if decode_s else 0.0,
                      "prompt_tokens": final.get("prompt_eval_count", 0), "completion_tokens": n,
                      "turns": len(self.history) // 2}
        return answer

    # ---- slash commands -------------------------------------------------------------

    def command(self, line: str) -> bool:
        """Run one slash command; False when the session should end."""
        cmd, _, rest = line.partition(" ")
        rest = rest.strip()
        if cmd in ("/bye", "/exit"):
            return False
        if cmd == "/clear":
            self.history.clear()
            self.out("Cleared session context.")
        elif cmd == "/stats":
            self.out("no answer yet" if self.stats is None else " ".join(f"{k}={v}" for k, v in self.stats.items()))
        elif cmd == "/set":
            self._set(rest)
        elif cmd == "/show":
            self._show(rest or "info")
        elif cmd == "/load":
            self._load(rest)
        else:
            self.out(f"Unknown command '{cmd}'. {HELP}")
        return True

    def _set(self, rest: str) -> None:
        what, _, value = rest.partition(" ")
        if what == "parameter":
            name, _, raw = value.strip().partition(" ")
            kind = PARAMETER_TYPES.get(name)
            if kind is None or not raw.strip():
                self.out(f"Usage: /set parameter NAME VALUE (NAME one of {', '.join(PARAMETER_TYPES)})")
                return
            try:
                parsed = kind(raw.strip())
            except ValueError:
                self.out(f"Couldn't set parameter: {name} needs a {kind.__name__}, got {raw.strip()!r}")
                return
            if name == "stop":
                self.options.setdefault("stop", []).append(parsed)
            else:
                self.options[name] = parsed
            self.out(f"Set parameter '{name}' to '{raw.strip()}'")
        elif what == "system":
            self.system = value.strip() or None
            self.out("Set system message.")
        elif what == "format" and value.strip() == "json":
            self.fmt = "json"
            self.out("Set format to 'json' mode.")
        elif what == "noformat":
            self.fmt = None
            self.out("Disabled format.")
        else:
            self.out("Usage: /set parameter NAME VALUE | /set system TEXT | /set format json | /set noformat")

    def _show(self, what: str) -> None:
        resp = self.client.post("/api/show", json={"model": self.model})
        if resp.status_code != 200:
            self.out(f"Error: {_error(resp.content)}")
            return
        data = resp.json()
        if what == "info":
            d = data.get("details", {})
            ctx = next((v for k, v in data.get("model_info", {}).items() if k.endswith("context_length")), "")
            self.out(f"  Model\n    name            {self.model}\n    family          {d.get('family', '')}\n"
                     f"    parameters      {d.get('parameter_size', '')}\n"
                     f"    quantization    {d.get('quantization_level', '')}\n    context length  {ctx}")
        elif what == "parameters":
            own = "\n".join(f"{k} {v}" for k, v in self.options.items())
            self.out((data.get("parameters") or "") + (("\n" + own) if own else "") or "No parameters set.")
        elif what == "system":
            self.out(self.system or data.get("system") or "No system message.")
        elif what in ("template", "modelfile", "license"):
            self.out(data.get(what) or f"No {what}.")
        else:
            self.out("Usage: /show info|parameters|template|system|modelfile|license")

    def _load(self, model: str) -> None:
        if not model:
            self.out("Usage: /load MODEL")
            return
        resp = self.client.post("/api/chat", json={"model": model, "messages": []})  # empty: load it
        if resp.status_code != 200:
            self.out(f"Error: {_error(resp.content)}")
            return
        self.model = model
        self.out(f"Loading model '{model}'")


def _error(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("error", raw.decode(errors="replace")))
    except ValueError:
        return raw.decode(errors="replace")
