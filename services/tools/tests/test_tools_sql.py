"""The read-only SQL tool against the real Postgres and a real SQLite file: writes, DDL,
COPY and multi-statements refused before they reach the database, a long pg_sleep cut by
statement_timeout, the row cap, introspection for NL-to-SQL prompts."""

from __future__ import annotations

import sqlite3
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from loom_tools.domain.types import Call
from loom_tools.errors import SqlRefused
from loom_tools.sql import guard

REFUSED = [
    "INSERT INTO shop.items VALUES (9, 'x', 1)", "UPDATE shop.items SET price = 0", "DELETE FROM shop.items",
    "DROP TABLE shop.items", "CREATE TABLE t (a int)", "ALTER TABLE shop.items ADD COLUMN z int",
    "TRUNCATE shop.items", "COPY shop.items TO '/tmp/out.csv'", "COPY shop.items FROM PROGRAM 'id'",
    "SELECT 1; DROP TABLE shop.items", "SELECT 1; SELECT 2", "SELECT * INTO stolen FROM shop.items",
    "WITH d AS (DELETE FROM shop.items RETURNING *) SELECT * FROM d",
    "WITH u AS (UPDATE shop.items SET price = 0 RETURNING *) SELECT 1",
    "SELECT * FROM shop.items FOR UPDATE", "GRANT ALL ON shop.items TO public", "SET statement_timeout = 0",
    "BEGIN", "VACUUM", "SELECT pg_read_file('/etc/passwd')", "SELECT set_config('x', 'y', false)",
    "SELECT pg_terminate_backend(1)", "EXPLAIN ANALYZE DELETE FROM shop.items", "CALL p()", "LOCK shop.items",
    "", "SELEC 1",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_tools_sql_guard_refuses_postgres(sql):
    with pytest.raises(SqlRefused) as err:
        guard.check(sql, "postgres")
    assert err.value.field == "sql"


@pytest.mark.parametrize("sql", ["ATTACH DATABASE '/tmp/x.db' AS x", "PRAGMA writable_schema = 1",
                                 "INSERT INTO items VALUES (1)", "SELECT 1; DELETE FROM items",
                                 "REPLACE INTO items VALUES (1, 'a', 2)", "SELECT load_extension('x')"])
def test_tools_sql_guard_refuses_sqlite(sql):
    with pytest.raises(SqlRefused):
        guard.check(sql, "sqlite")


@pytest.mark.parametrize("sql", [
    "SELECT * FROM shop.items", "select name from shop.items where price > 2 order by name limit 5;",
    "WITH c AS (SELECT price FROM shop.items) SELECT sum(price) FROM c",
    "SELECT 1 UNION ALL SELECT 2", "(SELECT 1)", "SELECT count(*) FROM shop.items i JOIN shop.items j ON true",
])
def test_tools_sql_guard_accepts_reads(sql):
    assert guard.check(sql, "postgres")


@pytest.fixture
async def shop_dsn(database_url):
    """A separate database the tool connects to, as a tenant's would be."""
    name = "tools_shop"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    dsn = urlunsplit(urlsplit(database_url)._replace(path="/" + name))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE SCHEMA shop; CREATE TABLE shop.items (id int PRIMARY KEY, name text NOT NULL, "
                           "price numeric(8,2)); INSERT INTO shop.items SELECT g, 'item-' || g, g * 1.5 "
                           "FROM generate_series(1, 1200) g")
    finally:
        await conn.close()
    return dsn


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM shop.items")
    finally:
        await conn.close()


@pytest.mark.integration
async def test_tools_sql_postgres(toolbox_factory, tenant, shop_dsn):
    box = toolbox_factory(sql_statement_timeout_ms=1000, sql_max_rows=100)
    tools = await box.catalog.add_connection(tenant, name="shop", driver="postgresql", dsn=shop_dsn)
    assert [t.name for t in tools] == ["shop.query", "shop.schema"] and all(t.has_credentials for t in tools)
    ex = box.executor

    out = await ex.invoke(Call(tenant, "shop.query", {"sql": "SELECT id, name, price FROM shop.items ORDER BY id"}))
    assert out.ok, out.error_message
    assert out.result["row_count"] == 100 and out.result["truncated"] is True
    assert out.result["rows"][0] == [1, "item-1", 1.5]
    assert [c["name"] for c in out.result["columns"]] == ["id", "name", "price"]

    for sql in REFUSED[:15]:
        refused = await ex.invoke(Call(tenant, "shop.query", {"sql": sql}))
        assert (refused.ok, refused.error_code, refused.error_field) == (False, "sql_refused", "sql"), sql
    assert await _count(shop_dsn) == 1200

    # A write the parser cannot see (a volatile function) still meets the read-only transaction.
    conn = await asyncpg.connect(shop_dsn)
    await conn.execute("CREATE FUNCTION shop.wipe() RETURNS int LANGUAGE sql AS "
                       "'DELETE FROM shop.items RETURNING 1'")
    await conn.close()
    sneaky = await ex.invoke(Call(tenant, "shop.query", {"sql": "SELECT shop.wipe()"}))
    assert sneaky.error_code == "sql_refused" and await _count(shop_dsn) == 1200

    slept = await ex.invoke(Call(tenant, "shop.query", {"sql": "SELECT pg_sleep(30)"}))
    assert slept.error_code == "timeout" and slept.duration_ms < 5000

    schema = await ex.invoke(Call(tenant, "shop.schema", {"schema": "shop"}))
    assert schema.ok
    (table,) = schema.result["tables"]
    assert table["name"] == "items"
    assert [(c["name"], c["type"]) for c in table["columns"]] == [("id", "integer"), ("name", "text"),
                                                                  ("price", "numeric")]
    assert len(table["sample_rows"]) == 3

    listing = await ex.list(tenant, "sql")
    assert all(shop_dsn not in repr(s) and "dsn" not in s.config for s in listing)


@pytest.mark.integration
async def test_tools_sql_sqlite(toolbox_factory, tenant, tmp_path):
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL)")
        conn.executemany("INSERT INTO items VALUES (?, ?, ?)", [(i, f"item-{i}", i * 1.5) for i in range(1, 801)])
    box = toolbox_factory(sql_statement_timeout_ms=500, sql_max_rows=50)
    await box.catalog.add_connection(tenant, name="lite", driver="sqlite", path=str(path))
    ex = box.executor

    out = await ex.invoke(Call(tenant, "lite.query", {"sql": "SELECT name, price FROM items WHERE id <= 2"}))
    assert out.ok and out.result["rows"] == [["item-1", 1.5], ["item-2", 3.0]]
    capped = await ex.invoke(Call(tenant, "lite.query", {"sql": "SELECT * FROM items"}))
    assert capped.result["row_count"] == 50 and capped.result["truncated"]

    for sql in ("DELETE FROM items", "INSERT INTO items VALUES (9999, 'x', 1)", "DROP TABLE items",
                "SELECT 1; DELETE FROM items", "ATTACH DATABASE '/tmp/evil.db' AS e", "PRAGMA query_only = OFF"):
        refused = await ex.invoke(Call(tenant, "lite.query", {"sql": sql}))
        assert refused.error_code == "sql_refused", sql
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (800,)

    # A runaway query is interrupted at the statement timeout.
    heavy = ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r")
    cut = await ex.invoke(Call(tenant, "lite.query", {"sql": heavy}))
    assert cut.error_code == "timeout" and cut.duration_ms < 3000

    schema = await ex.invoke(Call(tenant, "lite.schema", {}))
    (table,) = schema.result["tables"]
    assert [(c["name"], c["type"]) for c in table["columns"]] == [("id", "INTEGER"), ("name", "TEXT"),
                                                                  ("price", "REAL")]
    assert table["sample_rows"][0] == [1, "item-1", 1.5]


@pytest.mark.integration
async def test_tools_sql_connection_checks(toolbox_factory, tenant, tmp_path):
    box = toolbox_factory()
    from loom_tools.errors import InvalidArguments

    with pytest.raises(InvalidArguments) as err:
        await box.catalog.add_connection(tenant, name="x", driver="sqlite", path="/etc/passwd")
    assert err.value.field == "path"
    with pytest.raises(InvalidArguments) as err:
        await box.catalog.add_connection(tenant, name="x", driver="oracle")
    assert err.value.field == "driver"
    with pytest.raises(InvalidArguments) as err:
        await box.catalog.add_connection(tenant, name="x", driver="postgresql", dsn="mysql://a@b/c")
    assert err.value.field == "dsn"
