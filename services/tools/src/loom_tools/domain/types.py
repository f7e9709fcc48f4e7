"""The vocabulary every tool kind shares: a tool's spec, a call, and a kind's runner."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

# A tool name is safe in logs, URLs and LLM function-calling (which allows [A-Za-z0-9_.-]).
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
KINDS = ("builtin", "http", "openapi", "sql", "code", "tickets", "mcp")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    kind: str                      # one of KINDS
    parameters: dict[str, Any]     # JSON schema of the arguments object
    config: dict[str, Any] = field(default_factory=dict)
    # Decrypted only inside this process; never serialised by any transport.
    credentials: dict[str, Any] | None = field(default=None, repr=False)
    # What a listing may say about credentials: that there are some.
    has_credentials: bool = False

    def secret_values(self) -> list[str]:
        """Every credential string, so outputs and messages can be scrubbed of them."""
        out: list[str] = []

        def walk(v: Any) -> None:
            if isinstance(v, str) and len(v) >= 4:
                out.append(v)
            elif isinstance(v, dict):
                for x in v.values():
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)

        walk(self.credentials or {})
        return out


@dataclass(frozen=True)
class Call:
    tenant_id: str
    tool: str
    arguments: dict[str, Any]
    run_id: str = ""
    node_id: str = ""
    timeout_s: float = 0.0        # 0 = the tool's default


@dataclass(frozen=True)
class Outcome:
    ok: bool
    result: Any = None
    error_code: str = ""
    error_message: str = ""
    duration_ms: float = 0.0
    error_field: str = ""          # the argument at fault, when there is one


class Runner(Protocol):
    """Runs one kind of tool. Raises `ToolError` subclasses for typed refusals."""

    async def run(self, spec: ToolSpec, args: dict[str, Any], timeout_s: float) -> Any: ...
