"""Refuse, before it reaches a database, anything but one read-only SELECT / WITH query.

The statement is parsed with sqlglot in the connection's dialect. Accepted: exactly one
statement whose root is a SELECT, a set operation (UNION/INTERSECT/EXCEPT) or a parenthesised
query, containing no writing or locking node anywhere (data-modifying CTEs, SELECT INTO,
FOR UPDATE), calling only functions on an allow-list and reading no system catalogue. The
database's read-only transaction is the second wall; the connection's role (never a superuser,
see postgres.py) the third.
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
# Functions a read-only analytic query needs, by the name sqlglot gives them (its own canonical
# name for the functions it knows, e.g. TIMESTAMP_TRUNC for date_trunc; the written name for the
# rest). Anything else, user-defined functions included, is refused: a deny-list missed
# ts_stat('...pg_read_file(...)'), pg_notify, pg_ls_waldir, current_setting and more.
ALLOWED_FUNCTIONS = frozenset({
    # aggregates and windows
    "count", "sum", "avg", "min", "max", "array_agg", "group_concat", "string_agg", "bool_and", "bool_or",
    "every", "stddev", "stddev_pop", "stddev_samp", "variance", "variance_pop", "var_samp", "var_pop",
    "corr", "covar_pop", "covar_samp", "percentile_cont", "percentile_disc", "mode", "json_agg", "jsonb_agg",
    "json_object_agg", "jsonb_object_agg", "total", "row_number", "rank", "dense_rank", "percent_rank",
    "cume_dist", "ntile", "lag", "lead", "first_value", "last_value", "nth_value", "count_if", "any_value",
    # conditionals and casts
    "case", "if", "coalesce", "nullif", "greatest", "least", "cast", "try_cast", "ifnull", "iif", "exists",
    # numbers
    "abs", "round", "ceil", "ceiling", "floor", "trunc", "sqrt", "cbrt", "pow", "power", "mod", "sign", "ln",
    "log", "log10", "exp", "div", "width_bucket", "pi", "degrees", "radians",
    # text
    "lower", "upper", "length", "char_length", "character_length", "octet_length", "substring", "substr",
    "trim", "btrim", "ltrim", "rtrim", "replace", "concat", "concat_ws", "dpipe", "left", "right",
    "str_position", "strpos", "instr", "split_part", "lpad", "rpad", "pad", "initcap", "reverse",
    "regexp_replace", "regexp_like", "regexp_extract", "regexp_matches", "regexp_match", "regexp_split_to_array",
    "starts_with", "md5", "format", "to_char", "time_to_str", "translate", "ascii", "chr", "quote_ident",
    "string_to_array", "array_to_string", "printf", "unicode", "hex", "typeof",
    # dates and times
    "current_date", "current_time", "current_timestamp", "now", "localtime", "localtimestamp", "extract",
    "date_part", "date_trunc", "timestamp_trunc", "date", "time", "datetime", "julianday", "strftime",
    "age", "make_date", "make_time", "make_timestamp", "make_interval", "to_date", "to_timestamp",
    "str_to_date", "str_to_time", "ts_or_ds_to_timestamp", "ts_or_ds_to_date", "date_add", "date_sub",
    "date_diff", "timestamp_add", "timestamp_sub",
    "to_number", "justify_days", "justify_hours", "isfinite", "unix_to_time",
    # JSON and arrays
    "json_extract", "json_extract_scalar", "jsonb_extract", "jsonb_extract_scalar", "json_extract_path",
    "json_extract_path_text", "jsonb_extract_path", "jsonb_extract_path_text", "json_build_object",
    "jsonb_build_object", "json_build_array", "jsonb_build_array", "to_json", "to_jsonb", "json_array_length",
    "jsonb_array_length", "json_typeof", "jsonb_typeof", "jsonb_contains", "json_object", "json_array",
    "json_each", "jsonb_each", "json_array_elements", "jsonb_array_elements", "json_array_elements_text",
    "jsonb_array_elements_text", "array", "array_size", "array_length", "cardinality", "array_contains",
    "array_position", "array_append", "array_cat", "unnest", "explode", "generate_series",
    "exploding_generate_series", "gen_random_uuid", "current_user", "session_user", "current_schema",
})
# System catalogues and statistics views (pg_stat_activity shows other sessions' queries).
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


# sqlglot models some operators as functions too (AND, OR, ->>, @>, ~): their operands are
# walked like any other node, the operator itself calls nothing.
_OPERATORS = (exp.Binary, exp.Connector, exp.Unary)


def _function_name(node: exp.Func) -> str:
    return (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()


def _system_table(node: exp.Table) -> bool:
    """A catalogue table or view: in a system schema, or an unqualified pg_* name (pg_catalog
    comes first on every search_path, so `pg_stat_activity` alone means the catalogue's)."""
    schema = node.db.lower()
    return schema in _SYSTEM_SCHEMAS or (not schema and node.name.lower().startswith("pg_"))


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
        if isinstance(node, exp.Func) and not isinstance(node, _OPERATORS) \
                and _function_name(node) not in ALLOWED_FUNCTIONS:
            raise SqlRefused(f"function {_function_name(node)}() is not on the SQL tool's allow-list", field="sql")
        if dialect == "postgres" and isinstance(node, exp.Table) and _system_table(node):
            raise SqlRefused(f"system table {node.sql(dialect)} is not allowed (use the schema tool)", field="sql")
    # Run the text the caller wrote (sqlglot's regeneration could change semantics), minus a
    # trailing semicolon so drivers see one statement.
    return sql.strip().rstrip(";")
