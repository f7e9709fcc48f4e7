"""Ollama's Modelfile: a model made from another one with its own parameters and prompts.

    FROM gemma3:270m                  a model this engine serves, a local .gguf, or @sha256:<hex> (a blob)
    PARAMETER temperature 0.2         a default option of every request (a request's own wins)
    PARAMETER stop "<end_of_turn>"    (stop may repeat)
    SYSTEM \"\"\"You are terse.\"\"\"       the system message when a request brings none
    TEMPLATE \"\"\"{% for m in messages %}...\"\"\"   the chat template (Jinja, as a GGUF's own)
    MESSAGE user Hello                turns put before every conversation
    LICENSE \"\"\"MIT\"\"\"

TEMPLATE differs from Ollama's: it is a Jinja chat template (the format GGUF files carry,
rendered in a sandbox), not a Go template. ADAPTER (LoRA) is refused.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from loom_inference.engine.types import InvalidRequest

# The options a PARAMETER (or a request) may set, with their types: the ones this engine honours.
PARAMETER_TYPES: dict[str, type] = {
    "temperature": float, "top_p": float, "top_k": int, "min_p": float, "repeat_penalty": float,
    "repeat_last_n": int, "presence_penalty": float, "frequency_penalty": float, "mirostat": int,
    "mirostat_tau": float, "mirostat_eta": float, "seed": int, "num_predict": int, "num_ctx": int, "stop": str,
}
MAX_MODELFILE_CHARS = 1_000_000
MAX_MESSAGES = 256
ROLES = ("system", "user", "assistant", "tool")


@dataclass
class ModelSpec:
    """What a Modelfile (or /api/create's fields) says; empty fields inherit from FROM."""

    from_: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    system: str | None = None
    template: str | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    license: list[str] = field(default_factory=list)


def coerce_parameters(raw: dict[str, Any], field_name: str = "parameters") -> dict[str, Any]:
    """Check names and types (stop becomes a list); unknown names are refused, not ignored."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        kind = PARAMETER_TYPES.get(name)
        if kind is None:
            raise InvalidRequest(f"unknown or unsupported parameter {name!r} (supported: "
                                 f"{', '.join(PARAMETER_TYPES)})", field_name)
        values = value if isinstance(value, list) else [value]
        try:
            parsed = [kind(v) for v in values]
        except (TypeError, ValueError):
            raise InvalidRequest(f"{name} needs a {kind.__name__}, got {value!r}", field_name) from None
        if name == "stop":
            out.setdefault("stop", []).extend(parsed)
        elif len(parsed) != 1:
            raise InvalidRequest(f"{name} takes one value", field_name)
        else:
            out[name] = parsed[0]
    return out


def _commands(text: str) -> list[tuple[str, str, int]]:
    """(COMMAND, argument, line number) with \"\"\"...\"\"\" arguments spanning lines."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        cmd, _, arg = line.partition(" ")
        arg = arg.strip()
        if arg.startswith('"""'):
            body = arg[3:]
            start = i
            while '"""' not in body:
                if i >= len(lines):
                    raise InvalidRequest(f'line {start}: unterminated """', "modelfile")
                body += "\n" + lines[i]
                i += 1
            arg, _, rest = body.partition('"""')
            if rest.strip():
                raise InvalidRequest(f"line {i}: text after the closing \"\"\"", "modelfile")
        out.append((cmd.upper(), arg, i))
    return out


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return shlex.split(value)[0]
        except ValueError:
            return value[1:-1]
    return value


def parse(text: str) -> ModelSpec:
    if len(text) > MAX_MODELFILE_CHARS:
        raise InvalidRequest(f"longer than {MAX_MODELFILE_CHARS} characters", "modelfile")
    spec = ModelSpec()
    raw_params: dict[str, list[str]] = {}
    for cmd, arg, line in _commands(text):
        if cmd == "FROM":
            spec.from_ = _unquote(arg)
        elif cmd == "PARAMETER":
            name, _, value = arg.partition(" ")
            if not value.strip():
                raise InvalidRequest(f"line {line}: PARAMETER needs a name and a value", "modelfile")
            raw_params.setdefault(name.strip(), []).append(_unquote(value))
        elif cmd == "SYSTEM":
            spec.system = _unquote(arg)
        elif cmd == "TEMPLATE":
            spec.template = _unquote(arg)
        elif cmd == "LICENSE":
            spec.license.append(_unquote(arg))
        elif cmd == "MESSAGE":
            role, _, content = arg.partition(" ")
            if role.lower() not in ROLES:
                raise InvalidRequest(f"line {line}: MESSAGE role must be one of {', '.join(ROLES)}", "modelfile")
            spec.messages.append({"role": role.lower(), "content": _unquote(content)})
        elif cmd == "ADAPTER":
            raise InvalidRequest(f"line {line}: ADAPTER (LoRA) is not supported by this engine", "modelfile")
        else:
            raise InvalidRequest(f"line {line}: unknown command {cmd!r}", "modelfile")
    if not spec.from_:
        raise InvalidRequest("needs a FROM line", "modelfile")
    if len(spec.messages) > MAX_MESSAGES:
        raise InvalidRequest(f"at most {MAX_MESSAGES} MESSAGE lines", "modelfile")
    spec.parameters = coerce_parameters({k: v if k == "stop" else v[-1] for k, v in raw_params.items()},
                                        "modelfile")
    return spec


def render(spec: ModelSpec) -> str:
    """The Modelfile text of a spec (what /api/show's `modelfile` returns)."""
    out = [f"FROM {spec.from_}"]
    for name, value in spec.parameters.items():
        for v in value if isinstance(value, list) else [value]:
            out.append(f"PARAMETER {name} {_quote(str(v))}")
    if spec.system:
        out.append(f'SYSTEM """{spec.system}"""')
    if spec.template:
        out.append(f'TEMPLATE """{spec.template}"""')
    out += [f"MESSAGE {m['role']} {_quote(m['content'])}" for m in spec.messages]
    out += [f'LICENSE """{text}"""' for text in spec.license]
    return "\n".join(out) + "\n"


def parameters_text(parameters: dict[str, Any]) -> str:
    """/api/show's `parameters`: one `name value` line per value, as Ollama prints them."""
    lines = []
    for name, value in parameters.items():
        for v in value if isinstance(value, list) else [value]:
            lines.append(f"{name:<30} {_quote(str(v)) if isinstance(v, str) else v}")
    return "\n".join(lines)


def _quote(value: str) -> str:
    return f'"{value}"' if re.search(r'[\s"]', value) or not value else value
