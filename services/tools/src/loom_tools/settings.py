"""Settings of the tools service (env prefix `LOOM_TOOLS_`; shared ones keep `LOOM_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from loom_common.settings import ServiceSettings
from loom_tools.net.targets import PrivateTargets


class ToolsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LOOM_TOOLS_", extra="ignore",
                                      populate_by_name=True)

    http_port: int = 8083
    # Python's own event loop, not uvloop (and not the shared LOOM_EVENT_LOOP): uvloop spawns the
    # sandbox with libuv's plain fork(), and a child forked from this gRPC process runs grpc's
    # fork handlers; under load such children crashed with SIGSEGV before reading their request
    # (both fresh-clone CI runs after the switch). CPython's subprocess uses vfork, which skips them.
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "asyncio", validation_alias=AliasChoices("LOOM_TOOLS_EVENT_LOOP", "event_loop"))
    grpc_port: int = 50053
    # `home` (LOOM_HOME, loom_common.settings) holds the dev secret key and the default SQLite root.
    # Fernet key (urlsafe base64, 32 bytes) that encrypts tool credentials at rest. Unset: a
    # key is generated once into <LOOM_HOME>/tools/secret.key (dev only; set it in production).
    secret_key: str | None = None

    # ---- what tools may reach -------------------------------------------------------------
    # Loopback/private targets the operator allows for HTTP, OpenAPI and SQL tools alike:
    # comma-separated `host`, `host:port` or CIDR entries (grammar in net/targets.py), e.g.
    # "10.20.0.0/16,db.corp:5432". Empty: only public addresses are reachable.
    allow_private_targets: str = Field("", validation_alias=AliasChoices(
        "LOOM_TOOLS_ALLOW_PRIVATE_TARGETS", "allow_private_targets"))
    # The older, HTTP-only form: hosts exactly as written in URLs. Still read.
    http_allowlist: str = ""
    http_timeout_s: float = 15.0
    http_max_response_bytes: int = 2 * 1024 * 1024
    http_max_redirects: int = 5
    # MCP servers (kind `mcp`): the longest one session (list or call) may take. Their responses
    # share http_max_response_bytes and the private-target rules above.
    mcp_timeout_s: float = 30.0

    # ---- invocation ----------------------------------------------------------------------
    default_timeout_s: float = 30.0
    max_timeout_s: float = 120.0

    # ---- SQL tool ----------------------------------------------------------------------
    # Comma-separated directories SQLite connections may point into. Empty: <LOOM_HOME>/tools/sqlite.
    sqlite_roots: str = ""
    sql_statement_timeout_ms: int = 5000
    sql_max_rows: int = 500
    sql_sample_rows: int = 3

    # ---- code sandbox ------------------------------------------------------------------
    sandbox_python: str = "/usr/bin/python3"
    sandbox_node: str = "/usr/bin/node"
    sandbox_cpu_s: int = 5
    sandbox_memory_mb: int = 256
    sandbox_wall_s: float = 10.0
    sandbox_max_processes: int = 16
    sandbox_max_file_mb: int = 8
    sandbox_max_output_bytes: int = 1024 * 1024
    sandbox_tmpfs_mb: int = 32            # each of the sandbox's /tmp and /scratch (memory-backed)
    sandbox_max_concurrent: int = 4       # sandboxes at once in this process; the rest queue
    sandbox_queue_wait_s: float = 30.0    # then `sandbox_busy`
    # Without bubblewrap the sandbox has rlimits and a throwaway uid but no namespaces (no
    # network or filesystem isolation). That is refused unless this is set, and then warned.
    sandbox_allow_degraded: bool = False

    def sqlite_dirs(self) -> list[Path]:
        dirs = [Path(d.strip()) for d in self.sqlite_roots.split(",") if d.strip()]
        return dirs or [self.home / "tools" / "sqlite"]

    def private_targets(self) -> PrivateTargets:
        return PrivateTargets.parse(self.allow_private_targets)

    def allowlist(self) -> frozenset[str]:
        return frozenset(h.strip().lower().strip("[]") for h in self.http_allowlist.split(",") if h.strip())
