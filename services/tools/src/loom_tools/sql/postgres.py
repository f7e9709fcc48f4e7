"""PostgreSQL via asyncpg: a read-only transaction, statement_timeout, a row cap by cursor.

Every connection goes to the address `sql/dsn.py` vetted and is refused before anything runs
when its role is a superuser or may read server files or run server programs (such a role
reads `pg_authid`, files under the data directory, ... whatever the statement guard lets by).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from loom_tools.errors import SqlRefused, ToolTimeout, UpstreamError
from loom_tools.sql.dsn import Endpoint
from loom_tools.sql.values import jsonable, quote_ident


class Pools:
    """A small pool per DSN, so a call does not pay a new connection (≈ 25 ms) each time.

    Bounded: the least recently used pool closes when more DSNs are in use than `max_pools`.
    Connections are reset by asyncpg when released, and every query runs in its own read-only
    transaction with `SET LOCAL`, so nothing one call does outlives it. No statement cache:
    no prepared statement outlives the call either.
    """

    def __init__(self, max_pools: int = 32, per_pool: int = 4, idle_s: float = 60.0) -> None:
        self._pools: OrderedDict[tuple[str, str], asyncpg.Pool] = OrderedDict()
        self._max_pools, self._per_pool, self._idle_s = max_pools, per_pool, idle_s
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Future] = set()

    async def _pool(self, target: Target, timeout_s: float) -> asyncpg.Pool:
        key = (target.dsn, target.ip)
        async with self._lock:
            if key in self._pools:
                self._pools.move_to_end(key)
                return self._pools[key]
            # host/port/password given explicitly override the DSN's: the vetted address, and no
            # password from PGPASSWORD or ~/.pgpass of the service.
            pool = await asyncpg.create_pool(
                target.dsn, host=target.ip, port=target.endpoint.port, password=target.endpoint.password,
                min_size=0, max_size=self._per_pool, timeout=timeout_s, statement_cache_size=0,
                max_inactive_connection_lifetime=self._idle_s, init=refuse_privileged_role,
                server_settings={"application_name": "loom-tools-sql"})
            self._pools[key] = pool
            if len(self._pools) > self._max_pools:
                _, old = self._pools.popitem(last=False)
                # Closing waits for its connections in use: in the background, kept referenced.
                task = asyncio.ensure_future(old.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            return pool

    @contextlib.asynccontextmanager
    async def connection(self, target: Target, timeout_s: float) -> AsyncIterator[asyncpg.Connection]:
        try:
            pool = await self._pool(target, timeout_s)
            conn = await pool.acquire(timeout=timeout_s)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise UpstreamError(f"cannot connect to the database: {type(exc).__name__}: {exc}") from exc
        try:
            yield conn
        finally:
            await pool.release(conn)

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.close()


@dataclass(frozen=True)
class Target:
    """A DSN and the address its host was vetted to (`sql/dsn.py`)."""

    dsn: str
    endpoint: Endpoint
    ip: str


# Roles that reach past the tables granted to them: superusers, and the predefined roles that read
# or write server files or run programs on the server (COPY ... PROGRAM, pg_read_file).
# A member of a superuser role could SET ROLE to it, so membership counts as being one.
_PRIVILEGED = """
SELECT r.rolname, r.rolsuper OR EXISTS (
    SELECT 1 FROM pg_roles s WHERE s.rolsuper AND pg_has_role(r.oid, s.oid, 'MEMBER')) AS rolsuper, ARRAY(
    SELECT g.rolname FROM pg_roles g
    WHERE g.rolname IN ('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program')
      AND pg_has_role(r.oid, g.oid, 'MEMBER')) AS powers
FROM pg_roles r WHERE r.rolname = current_user
"""


async def refuse_privileged_role(conn: asyncpg.Connection) -> None:
    """Run on every new connection, before any statement of a tool: refuse powerful roles."""
    row = await conn.fetchrow(_PRIVILEGED)
    if row is None or row["rolsuper"] or row["powers"]:
        what = "a superuser" if row is None or row["rolsuper"] else "a member of " + ", ".join(row["powers"])
        name = row["rolname"] if row is not None else "?"
        raise SqlRefused(f"the connection's role {name!r} is {what}: give the SQL tool a role that can only "
                         "read what it should", field="dsn")


async def _run(conn: asyncpg.Connection, sql: str, max_rows: int, timeout_ms: int) -> dict[str, Any]:
    try:
        async with conn.transaction(readonly=True):
            await conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            stmt = await conn.prepare(sql)
            columns = [{"name": a.name, "type": a.type.name} for a in stmt.get_attributes()]
            cursor = await stmt.cursor()
            rows = await cursor.fetch(max_rows + 1)
    except asyncpg.QueryCanceledError as exc:
        raise ToolTimeout(f"statement cancelled after {timeout_ms} ms (statement_timeout)") from exc
    except asyncpg.ReadOnlySQLTransactionError as exc:
        raise SqlRefused(f"the database refused a write in a read-only transaction: {exc}", field="sql") from exc
    except asyncpg.PostgresError as exc:
        raise UpstreamError(f"database error: {type(exc).__name__}: {exc}") from exc
    truncated = len(rows) > max_rows
    return {"columns": columns, "rows": [[jsonable(v) for v in r.values()] for r in rows[:max_rows]],
            "row_count": min(len(rows), max_rows), "truncated": truncated}


async def query(pools: Pools, target: Target, sql: str, *, max_rows: int, timeout_ms: int) -> dict[str, Any]:
    async with pools.connection(target, timeout_ms / 1000 + 5) as conn:
        return await _run(conn, sql, max_rows, timeout_ms)


_COLUMNS = """
SELECT c.table_schema, c.table_name, c.column_name, c.data_type, c.is_nullable = 'YES' AS nullable
FROM information_schema.columns c
JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema') AND c.table_schema NOT LIKE 'pg\\_%'
  AND ($1::text IS NULL OR c.table_schema = $1) AND ($2::text[] IS NULL OR c.table_name = ANY($2))
ORDER BY c.table_schema, c.table_name, c.ordinal_position
"""


async def introspect(pools: Pools, target: Target, *, schema: str | None, tables: list[str] | None,
                     sample_rows: int, max_tables: int, timeout_ms: int) -> dict[str, Any]:
    async with pools.connection(target, timeout_ms / 1000 + 5) as conn:
        try:
            rows = await conn.fetch(_COLUMNS, schema, tables, timeout=timeout_ms / 1000)
        except (asyncpg.PostgresError, TimeoutError) as exc:
            raise UpstreamError(f"introspection failed: {type(exc).__name__}: {exc}") from exc
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for r in rows:
            key = (r["table_schema"], r["table_name"])
            if key not in found:
                if len(found) >= max_tables:
                    break
                found[key] = {"schema": key[0], "name": key[1], "columns": []}
            found[key]["columns"].append({"name": r["column_name"], "type": r["data_type"],
                                          "nullable": r["nullable"]})
        for (sch, name), table in found.items():
            sample = await _run(conn, f"SELECT * FROM {quote_ident(sch)}.{quote_ident(name)}",
                                sample_rows, timeout_ms)
            table["sample_rows"] = sample["rows"]
        return {"dialect": "postgres", "tables": list(found.values())}
