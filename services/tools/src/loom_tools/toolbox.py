"""Wiring: settings + a database pool -> the executor (with every kind's runner) and catalog.

Kept apart from `app.py` so in-process tests build exactly what the service runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from loom_tools import tickets
from loom_tools.builtins import BuiltinRunner
from loom_tools.builtins import catalog as builtin_catalog
from loom_tools.catalog import Catalog
from loom_tools.domain.executor import Executor
from loom_tools.domain.secrets import SecretBox, load_key
from loom_tools.mcp.runner import McpRunner
from loom_tools.mcp.session import McpSessions
from loom_tools.medkg import tools as medkg
from loom_tools.net.client import GuardedClient
from loom_tools.net.ssrf import Guard
from loom_tools.net.tools import REQUEST_SPEC, HttpRunner
from loom_tools.openapi.runner import OpenApiRunner
from loom_tools.sandbox import tools as code_tools
from loom_tools.sandbox.runner import CodeRunner, Limits, Sandbox
from loom_tools.settings import ToolsSettings
from loom_tools.sql.runner import SqlRunner
from loom_tools.store.audit import PgAudit
from loom_tools.store.registry import Registry


@dataclass
class Toolbox:
    executor: Executor
    catalog: Catalog
    sandbox: Sandbox
    sql: SqlRunner

    async def close(self) -> None:
        await self.sql.pools.close()


def build_sandbox(s: ToolsSettings) -> Sandbox:
    limits = Limits(cpu_s=s.sandbox_cpu_s, memory_mb=s.sandbox_memory_mb, wall_s=s.sandbox_wall_s,
                    max_processes=s.sandbox_max_processes, max_file_mb=s.sandbox_max_file_mb,
                    max_output_bytes=s.sandbox_max_output_bytes, tmpfs_mb=s.sandbox_tmpfs_mb,
                    max_concurrent=s.sandbox_max_concurrent, queue_wait_s=s.sandbox_queue_wait_s)
    return Sandbox(limits, python=s.sandbox_python, node=s.sandbox_node, allow_degraded=s.sandbox_allow_degraded)


def build_toolbox(s: ToolsSettings, pool: asyncpg.Pool, *, sandbox: Sandbox | None = None) -> Toolbox:
    registry = Registry(pool, SecretBox(load_key(s.secret_key, s.home)))
    private = s.private_targets()
    guard = Guard(s.allowlist(), private=private)
    client = GuardedClient(guard, timeout_s=s.http_timeout_s, max_bytes=s.http_max_response_bytes,
                           max_redirects=s.http_max_redirects)
    mcp = McpSessions(guard, max_bytes=s.http_max_response_bytes, timeout_s=s.mcp_timeout_s)
    sandbox = sandbox or build_sandbox(s)
    builtins = {name: spec for name, (spec, _) in builtin_catalog().items()}
    builtins.update({t.name: t for t in (REQUEST_SPEC, code_tools.PYTHON, tickets.SPEC, *medkg.SPECS)})
    if sandbox.node is not None:
        builtins[code_tools.JAVASCRIPT.name] = code_tools.JAVASCRIPT
    sql = SqlRunner(max_rows=s.sql_max_rows, timeout_ms=s.sql_statement_timeout_ms, sample_rows=s.sql_sample_rows,
                    private=private)
    runners = {
        "builtin": BuiltinRunner(),
        "http": HttpRunner(client),
        "openapi": OpenApiRunner(client),
        "sql": sql,
        "code": CodeRunner(sandbox),
        "tickets": tickets.TicketRunner(pool),
        "medkg": medkg.MedkgRunner(pool),
        "mcp": McpRunner(mcp),
    }
    executor = Executor(registry, builtins, runners, PgAudit(pool), default_timeout_s=s.default_timeout_s,
                        max_timeout_s=s.max_timeout_s)
    return Toolbox(executor, Catalog(registry, s, mcp), sandbox, sql)
