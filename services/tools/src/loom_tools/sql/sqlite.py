"""SQLite, opened read-only (`mode=ro` + `query_only`), run in a worker thread.

sqlite3 has no statement timeout: a progress handler aborts the statement past its deadline.
Files are only opened below the configured directories, so a tenant cannot point a
"connection" at the service's own files.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from loom_tools.errors import InvalidArguments, SqlRefused, ToolTimeout, UpstreamError
from loom_tools.sql.values import jsonable, quote_ident


def check_path(path: str, roots: list[Path]) -> Path:
    # A relative path is a file under the first root (how a template names its sample database
    # without knowing where the operator keeps them); it must still resolve inside a root.
    p = Path(path)
    p = (p if p.is_absolute() or not roots else roots[0] / p).resolve()
    if not any(p.is_relative_to(r.resolve()) for r in roots):
        raise InvalidArguments(f"argument 'path': SQLite files must be under {[str(r) for r in roots]}",
                               field="path")
    if not p.is_file():
        raise InvalidArguments(f"argument 'path': no SQLite file at {p}", field="path")
    return p


def _open(path: str, timeout_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=1.0, check_same_thread=False)
    conn.execute("PRAGMA query_only = ON")
    deadline = time.monotonic() + timeout_ms / 1000
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 5000)
    return conn


def _run(conn: sqlite3.Connection, sql: str, max_rows: int, timeout_ms: int) -> dict[str, Any]:
    try:
        cur = conn.execute(sql)
        columns = [{"name": d[0], "type": None} for d in (cur.description or [])]
        rows = cur.fetchmany(max_rows + 1)
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise ToolTimeout(f"statement cancelled after {timeout_ms} ms") from exc
        if "readonly" in str(exc) or "read-only" in str(exc):
            raise SqlRefused(f"the database refused a write: {exc}", field="sql") from exc
        raise UpstreamError(f"database error: {exc}") from exc
    except sqlite3.Error as exc:
        raise UpstreamError(f"database error: {type(exc).__name__}: {exc}") from exc
    return {"columns": columns, "rows": [[jsonable(v) for v in r] for r in rows[:max_rows]],
            "row_count": min(len(rows), max_rows), "truncated": len(rows) > max_rows}


def _query_sync(path: str, sql: str, max_rows: int, timeout_ms: int) -> dict[str, Any]:
    conn = _open(path, timeout_ms)
    try:
        return _run(conn, sql, max_rows, timeout_ms)
    finally:
        conn.close()


def _introspect_sync(path: str, tables: list[str] | None, sample_rows: int, max_tables: int,
                     timeout_ms: int) -> dict[str, Any]:
    conn = _open(path, timeout_ms)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name")]
        out = []
        for name in [n for n in names if tables is None or n in tables][:max_tables]:
            cols = conn.execute(f"PRAGMA table_info({quote_ident(name)})").fetchall()
            sample = _run(conn, f"SELECT * FROM {quote_ident(name)}", sample_rows, timeout_ms)
            out.append({"schema": "main", "name": name,
                        "columns": [{"name": c[1], "type": c[2], "nullable": not c[3]} for c in cols],
                        "sample_rows": sample["rows"]})
        return {"dialect": "sqlite", "tables": out}
    finally:
        conn.close()


async def query(path: str, sql: str, *, max_rows: int, timeout_ms: int) -> dict[str, Any]:
    return await asyncio.to_thread(_query_sync, path, sql, max_rows, timeout_ms)


async def introspect(path: str, *, tables: list[str] | None, sample_rows: int, max_tables: int,
                     timeout_ms: int) -> dict[str, Any]:
    return await asyncio.to_thread(_introspect_sync, path, tables, sample_rows, max_tables, timeout_ms)
