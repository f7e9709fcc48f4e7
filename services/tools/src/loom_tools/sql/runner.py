"""The `sql` tool kind: `<conn>.query` runs a guarded SELECT, `<conn>.schema` introspects.

A connection is registered as these two tools. Config holds the driver, the SQLite path
and limits; a PostgreSQL DSN (it may carry a password) is a sealed credential.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loom_tools.domain.types import ToolSpec
from loom_tools.errors import InvalidArguments
from loom_tools.net.targets import PrivateTargets
from loom_tools.sql import dsn as pg_dsn
from loom_tools.sql import guard, postgres, sqlite

DRIVERS = {"postgresql": "postgres", "sqlite": "sqlite"}   # driver -> sqlglot dialect

QUERY_PARAMS = {"type": "object", "properties": {"sql": {"type": "string", "minLength": 1, "maxLength": 100_000}},
                "required": ["sql"], "additionalProperties": False}
SCHEMA_PARAMS = {"type": "object", "properties": {
    "schema": {"type": "string"}, "tables": {"type": "array", "items": {"type": "string"}, "maxItems": 200}},
    "additionalProperties": False}


def connection_tools(name: str, driver: str, *, description: str, dsn: str | None, path: str | None,
                     sqlite_roots: list[Path]) -> list[ToolSpec]:
    if driver not in DRIVERS:
        raise InvalidArguments(f"argument 'driver': one of {sorted(DRIVERS)}", field="driver")
    if driver == "postgresql":
        pg_dsn.endpoint(dsn or "")  # its form now; its address is vetted on every call
    config: dict[str, Any] = {"driver": driver}
    creds = None
    if driver == "sqlite":
        config["path"] = str(sqlite.check_path(path or "", sqlite_roots))
    else:
        creds = {"dsn": dsn}
    about = f" ({description})" if description else ""
    return [
        ToolSpec(f"{name}.query", f"Run one read-only SQL SELECT on the {driver} database {name}{about}.",
                 "sql", QUERY_PARAMS, {**config, "op": "query"}, creds),
        ToolSpec(f"{name}.schema", f"Tables, columns, types and sample rows of the {driver} database {name}.",
                 "sql", SCHEMA_PARAMS, {**config, "op": "schema"}, creds),
    ]


class SqlRunner:
    def __init__(self, *, max_rows: int, timeout_ms: int, sample_rows: int, max_tables: int = 50,
                 private: PrivateTargets | None = None) -> None:
        self.private = private or PrivateTargets()  # loopback/private hosts the operator allows
        self.max_rows = max_rows
        self.timeout_ms = timeout_ms
        self.sample_rows = sample_rows
        self.max_tables = max_tables
        self.pools = postgres.Pools()

    async def run(self, spec: ToolSpec, args: dict[str, Any], timeout_s: float) -> Any:
        cfg = spec.config
        driver = cfg["driver"]
        timeout_ms = min(int(cfg.get("timeout_ms", self.timeout_ms)), int(timeout_s * 1000))
        max_rows = min(int(cfg.get("max_rows", self.max_rows)), self.max_rows)
        if cfg["op"] == "schema":
            if driver == "sqlite":
                return await sqlite.introspect(cfg["path"], tables=args.get("tables"), sample_rows=self.sample_rows,
                                               max_tables=self.max_tables, timeout_ms=timeout_ms)
            return await postgres.introspect(self.pools, await self._target(spec), schema=args.get("schema"),
                                             tables=args.get("tables"), sample_rows=self.sample_rows,
                                             max_tables=self.max_tables, timeout_ms=timeout_ms)
        sql = guard.check(args["sql"], DRIVERS[driver])
        if driver == "sqlite":
            return await sqlite.query(cfg["path"], sql, max_rows=max_rows, timeout_ms=timeout_ms)
        return await postgres.query(self.pools, await self._target(spec), sql, max_rows=max_rows,
                                    timeout_ms=timeout_ms)

    async def _target(self, spec: ToolSpec) -> postgres.Target:
        """Vetted on every call: what a name resolves to may have changed since registration."""
        dsn = (spec.credentials or {}).get("dsn", "")
        endpoint, ip = await pg_dsn.vet(dsn, self.private)
        return postgres.Target(dsn, endpoint, ip)
