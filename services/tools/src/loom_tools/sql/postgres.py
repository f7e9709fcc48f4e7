"""PostgreSQL via asyncpg: a read-only transaction, statement_timeout, a row cap by cursor."""

from __future__ import annotations

from typing import Any

import asyncpg

from loom_tools.errors import SqlRefused, ToolTimeout, UpstreamError
from loom_tools.sql.values import jsonable, quote_ident


async def _connect(dsn: str, timeout_s: float) -> asyncpg.Connection:
    try:
        # statement_cache_size=0: no prepared statement outlives the call.
        return await asyncpg.connect(dsn, timeout=timeout_s, statement_cache_size=0,
                                     server_settings={"application_name": "loom-tools-sql"})
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise UpstreamError(f"cannot connect to the database: {type(exc).__name__}: {exc}") from exc


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


async def query(dsn: str, sql: str, *, max_rows: int, timeout_ms: int) -> dict[str, Any]:
    conn = await _connect(dsn, timeout_ms / 1000 + 5)
    try:
        return await _run(conn, sql, max_rows, timeout_ms)
    finally:
        await conn.close(timeout=2)


_COLUMNS = """
SELECT c.table_schema, c.table_name, c.column_name, c.data_type, c.is_nullable = 'YES' AS nullable
FROM information_schema.columns c
JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema') AND c.table_schema NOT LIKE 'pg\\_%'
  AND ($1::text IS NULL OR c.table_schema = $1) AND ($2::text[] IS NULL OR c.table_name = ANY($2))
ORDER BY c.table_schema, c.table_name, c.ordinal_position
"""


async def introspect(dsn: str, *, schema: str | None, tables: list[str] | None, sample_rows: int,
                     max_tables: int, timeout_ms: int) -> dict[str, Any]:
    conn = await _connect(dsn, timeout_ms / 1000 + 5)
    try:
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
    finally:
        await conn.close(timeout=2)
