"""Refuse, before it reaches a database, anything but one read-only SELECT / WITH query.

The statement is parsed with sqlglot in the connection's dialect. Accepted: exactly one
statement whose root is a SELECT, a set operation (UNION/INTERSECT/EXCEPT) or a parenthesised
query, containing no writing or locking node anywhere (data-modifying CTEs, SELECT INTO,
FOR UPDATE) and calling no function on the denylist (server file access, settings, other
sessions). The database's read-only transaction is the second wall, a least-privilege role
the third.
"""

from __future__ import annotations

import logging

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from loom_tools.errors import SqlRefused

# sqlglot warns when it falls back to an opaque Command; we refuse those anyway.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

_ROOTS = (exp.Select, exp.SetOperation, exp.Subquery)
_FORBIDDEN_NAMES = ("Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Command", "Copy",
                    "Into", "Lock", "Set", "Transaction", "Commit", "Rollback", "Grant", "Revoke", "Pragma",
                    "Attach", "Detach", "TruncateTable", "Use", "LoadData", "Cache", "Uncache", "Refresh")
_FORBIDDEN = tuple(getattr(exp, n) for n in _FORBIDDEN_NAMES if hasattr(exp, n))
_FUNCTIONS = {
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import", "lo_export",
    "lo_get", "lo_from_bytea", "set_config", "pg_reload_conf", "pg_terminate_backend",
    "pg_cancel_backend", "pg_advisory_lock", "pg_advisory_xact_lock", "dblink", "dblink_exec",
    "dblink_connect", "pg_logical_emit_message", "txid_current", "nextval", "setval",
    "pg_switch_wal", "pg_create_restore_point", "query_to_xml", "load_extension", "readfile", "writefile",
}


def check(sql: str, dialect: str) -> str:
    """Return the single statement's SQL text, or raise SqlRefused naming why."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except SqlglotError as exc:
        raise SqlRefused(f"cannot parse the statement: {str(exc)[:300]}", field="sql") from exc
    if len(statements) != 1:
        raise SqlRefused(f"exactly one statement allowed, got {len(statements)}", field="sql")
    stmt = statements[0]
    if not isinstance(stmt, _ROOTS):
        raise SqlRefused(f"only SELECT/WITH queries are allowed, not {stmt.key.upper()}", field="sql")
    for node in stmt.walk():
        if isinstance(node, _FORBIDDEN):
            raise SqlRefused(f"{node.key.upper()} is not allowed inside a read-only query", field="sql")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name in _FUNCTIONS:
                raise SqlRefused(f"function {name}() is not allowed", field="sql")
    # Run the text the caller wrote (sqlglot's regeneration could change semantics), minus a
    # trailing semicolon so drivers see one statement.
    return sql.strip().rstrip(";")
