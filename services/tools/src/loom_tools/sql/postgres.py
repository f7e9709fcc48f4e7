"""PostgreSQL via asyncpg: a read-only transaction, statement_timeout, a row cap by cursor."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from loom_tools.errors import SqlRefused, ToolTimeout, UpstreamError
from loom_tools.sql.values import jsonable, quote_ident


class Pools:
    """A small pool per DSN, so a call does not pay a new connection (≈ 25 ms) each time.

    Bounded: the least recently used pool closes when more DSNs are in use than `max_pools`.
    Connections are reset by asyncpg when released, and every query runs in its own read-only
    transaction with `SET LOCAL`, so nothing one call does outlives it. No statement cache:
    no prepared statement outlives the call either.
    """

    def __init__(self, max_pools: int = 32, per_pool: int = 4, idle_s: float = 60.0) -> None:
        self._pools: OrderedDict[str, asyncpg.Pool] = OrderedDict()
        self._max_pools, self._per_pool, self._idle_s = max_pools, per_pool, idle_s
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Future] = set()

    async def _pool(self, dsn: str, timeout_s: float) -> asyncpg.Pool:
        async with self._lock:
            if dsn in self._pools:
                self._pools.move_to_end(dsn)
                return self._pools[dsn]
            pool = await asyncpg.create_pool(
                dsn, min_size=0, max_size=self._per_pool, timeout=timeout_s, statement_cache_size=0,
                max_inactive_connection_lifetime=self._idle_s,
                server_settings={"application_name": "loom-tools-sql"})
            self._pools[dsn] = pool
            if len(self._pools) > self._max_pools:
                _, old = self._pools.popitem(last=False)
                # Closing waits for its connections in use: in the background, kept referenced.
                task = asyncio.ensure_future(old.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            return pool

    @contextlib.asynccontextmanager
    async def connection(self, dsn: str, timeout_s: float) -> AsyncIterator[asyncpg.Connection]:
        try:
            pool = await self._pool(dsn, timeout_s)
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


async def query(pools: Pools, dsn: str, sql: str, *, max_rows: int, timeout_ms: int) -> dict[str, Any]:
    async with pools.connection(dsn, timeout_ms / 1000 + 5) as conn:
        return await _run(conn, sql, max_rows, timeout_ms)


_COLUMNS = """
SELECT c.table_schema, c.table_name, c.column_name, c.data_type, c.is_nullable = 'YES' AS nullable
FROM information_schema.columns c
JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema') AND c.table_schema NOT LIKE 'pg\\_%'
  AND ($1::text IS NULL OR c.table_schema = $1) AND ($2::text[] IS NULL OR c.table_name = ANY($2))
ORDER BY c.table_schema, c.table_name, c.ordinal_position
"""


async def introspect(pools: Pools, dsn: str, *, schema: str | None, tables: list[str] | None,
                     sample_rows: int, max_tables: int, timeout_ms: int) -> dict[str, Any]:
    async with pools.connection(dsn, timeout_ms / 1000 + 5) as conn:
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
