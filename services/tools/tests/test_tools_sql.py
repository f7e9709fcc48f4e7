"""The read-only SQL tool against the real Postgres and a real SQLite file: writes, DDL,
COPY and multi-statements refused before they reach the database, a long query cut by
statement_timeout, the row cap, introspection for NL-to-SQL prompts; and the attacks of issue
18: the platform's own database on loopback, a superuser role, functions and catalogue views
that read files, settings or other sessions."""

from __future__ import annotations

import sqlite3
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from loom_tools.domain.types import Call
from loom_tools.errors import InvalidArguments, SqlRefused, SsrfBlocked
from loom_tools.net.targets import PrivateTargets
from loom_tools.sql import dsn as pg_dsn
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


SHOP_ROLE, SHOP_PASSWORD = "tools_shop_reader", "reader-pw-1"


def _with(dsn: str, *, path: str | None = None, user: str | None = None, password: str | None = None) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}:{password}@{netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc, path=path if path is not None else parts.path))


@pytest.fixture
async def shop_admin_dsn(database_url):
    """A separate database the tool connects to, as a tenant's would be (as the superuser)."""
    name = "tools_shop"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
        await admin.execute(f"DROP ROLE IF EXISTS {SHOP_ROLE}")
        await admin.execute(f"CREATE ROLE {SHOP_ROLE} LOGIN PASSWORD '{SHOP_PASSWORD}'")
    finally:
        await admin.close()
    dsn = _with(database_url, path="/" + name)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE SCHEMA shop; CREATE TABLE shop.items (id int PRIMARY KEY, name text NOT NULL, "
                           "price numeric(8,2)); INSERT INTO shop.items SELECT g, 'item-' || g, g * 1.5 "
                           "FROM generate_series(1, 1200) g")
        await conn.execute(f"GRANT USAGE ON SCHEMA shop TO {SHOP_ROLE}; "
                           f"GRANT SELECT ON ALL TABLES IN SCHEMA shop TO {SHOP_ROLE}")
    finally:
        await conn.close()
    return dsn


@pytest.fixture
def shop_dsn(shop_admin_dsn):
    """The tenant's connection: a role that may only read the shop's tables."""
    return _with(shop_admin_dsn, user=SHOP_ROLE, password=SHOP_PASSWORD)


async def _count(dsn: str) -> int:  # as the superuser: the test's own view
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM shop.items")
    finally:
        await conn.close()


@pytest.mark.integration
async def test_tools_sql_postgres(toolbox_factory, tenant, shop_dsn, shop_admin_dsn):
    # The test database listens on loopback: the operator's allow-list opens it (and only it).
    box = toolbox_factory(sql_statement_timeout_ms=1000, sql_max_rows=100, allow_private_targets="127.0.0.1")
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
    assert await _count(shop_admin_dsn) == 1200

    # A write hidden in a function: user-defined functions are off the allow-list.
    conn = await asyncpg.connect(shop_admin_dsn)
    await conn.execute("CREATE FUNCTION shop.wipe() RETURNS int LANGUAGE sql AS "
                       "'DELETE FROM shop.items RETURNING 1'")
    await conn.close()
    sneaky = await ex.invoke(Call(tenant, "shop.query", {"sql": "SELECT shop.wipe()"}))
    assert sneaky.error_code == "sql_refused" and await _count(shop_admin_dsn) == 1200

    # pg_sleep is off the allow-list too; a query that is merely long is cut by statement_timeout.
    slow = "SELECT count(*) FROM generate_series(1, 1000000000) a"
    slept = await ex.invoke(Call(tenant, "shop.query", {"sql": slow}))
    assert slept.error_code == "timeout" and slept.duration_ms < 5000

    schema = await ex.invoke(Call(tenant, "shop.schema", {"schema": "shop"}))
    assert schema.ok
    (table,) = schema.result["tables"]
    assert table["name"] == "items"
    assert [(c["name"], c["type"]) for c in table["columns"]] == [("id", "integer"), ("name", "text"),
                                                                  ("price", "numeric")]
    assert len(table["sample_rows"]) == 3

    listing = await ex.list(tenant, "sql")
    assert all(shop_dsn not in repr(s) and SHOP_PASSWORD not in repr(s) and "dsn" not in s.config for s in listing)


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
    # A relative path names a file under the first SQLite root, never one outside it.
    root = box.catalog._settings.sqlite_dirs()[0]
    root.mkdir(parents=True, exist_ok=True)
    sqlite3.connect(root / "rel.sqlite").close()
    [query, _] = await box.catalog.add_connection(tenant, name="rel", driver="sqlite", path="rel.sqlite")
    assert query.config["path"] == str((root / "rel.sqlite").resolve())
    with pytest.raises(InvalidArguments) as err:
        await box.catalog.add_connection(tenant, name="x", driver="sqlite", path="../../etc/passwd")
    assert err.value.field == "path"
    with pytest.raises(InvalidArguments) as err:
        await box.catalog.add_connection(tenant, name="x", driver="oracle")
    assert err.value.field == "driver"
    with pytest.raises(InvalidArguments) as err:
        await box.catalog.add_connection(tenant, name="x", driver="postgresql", dsn="mysql://a@b/c")
    assert err.value.field == "dsn"


# What issue 18 ran through the tool (a superuser on the platform's database read files and
# settings, sent notifications, listed other sessions' queries): each refused by the guard.
ISSUE_18_QUERIES = [
    "SELECT * FROM ts_stat('SELECT to_tsvector(pg_read_file(''/etc/passwd''))')",
    "SELECT pg_notify('runs', 'forged')", "SELECT * FROM pg_ls_waldir()",
    "SELECT current_setting('data_directory')", "SELECT query FROM pg_stat_activity",
    "SELECT usename, query FROM pg_catalog.pg_stat_activity", "SELECT rolpassword FROM pg_authid",
    "SELECT * FROM information_schema.role_table_grants", "SELECT version()",
]


@pytest.mark.parametrize("sql", ISSUE_18_QUERIES)
def test_tools_sql_guard_allows_only_listed_functions_and_no_catalogue(sql):
    with pytest.raises(SqlRefused) as err:
        guard.check(sql, "postgres")
    assert err.value.field == "sql"


@pytest.mark.integration
async def test_tools_sql_platform_database_and_superuser_refused(toolbox_factory, tenant, database_url,
                                                                 shop_dsn, shop_admin_dsn):
    """Issue 18's attack: a connection to postgresql://postgres@127.0.0.1/<the platform's db>."""
    platform = database_url   # the superuser on the platform's own Postgres
    closed = toolbox_factory()   # no allow-list: loopback is out of reach, whatever the role
    await closed.catalog.add_connection(tenant, name="platform", driver="postgresql", dsn=platform)
    out = await closed.executor.invoke(Call(tenant, "platform.query", {"sql": "SELECT 1"}))
    assert (out.ok, out.error_code, out.error_field) == (False, "ssrf_blocked", "dsn")
    assert "127.0.0.1" in out.error_message and "LOOM_TOOLS_ALLOW_PRIVATE_TARGETS" in out.error_message
    schema = await closed.executor.invoke(Call(tenant, "platform.schema", {}))
    assert schema.error_code == "ssrf_blocked"

    # Even where the operator opened loopback, a superuser role is refused before anything runs,
    # and so is a role that may read server files.
    opened = toolbox_factory(allow_private_targets="127.0.0.1")
    await opened.catalog.add_connection(tenant, name="root", driver="postgresql", dsn=shop_admin_dsn)
    for tool in ("root.query", "root.schema"):
        args = {"sql": "SELECT count(*) FROM shop.items"} if tool.endswith("query") else {}
        refused = await opened.executor.invoke(Call(tenant, tool, args))
        assert (refused.error_code, refused.error_field) == ("sql_refused", "dsn"), refused.error_message
        assert "superuser" in refused.error_message
    admin = await asyncpg.connect(shop_admin_dsn)
    try:
        await admin.execute(f"GRANT pg_read_server_files TO {SHOP_ROLE}")
        await opened.catalog.add_connection(tenant, name="filer", driver="postgresql", dsn=shop_dsn)
        filer = await opened.executor.invoke(Call(tenant, "filer.query", {"sql": "SELECT 1"}))
        assert filer.error_code == "sql_refused" and "pg_read_server_files" in filer.error_message
        # A member of a superuser role (it could SET ROLE to it) counts as one.
        await admin.execute(f"REVOKE pg_read_server_files FROM {SHOP_ROLE}; DROP ROLE IF EXISTS tools_shop_root;"
                            f" CREATE ROLE tools_shop_root SUPERUSER NOLOGIN; GRANT tools_shop_root TO {SHOP_ROLE}")
        await opened.catalog.add_connection(tenant, name="member", driver="postgresql", dsn=shop_dsn)
        member = await opened.executor.invoke(Call(tenant, "member.query", {"sql": "SELECT 1"}))
        assert member.error_code == "sql_refused" and "superuser" in member.error_message
    finally:
        await admin.execute(f"REVOKE pg_read_server_files FROM {SHOP_ROLE}; DROP ROLE IF EXISTS tools_shop_root")
        await admin.close()

    # A least-privilege role through the allow-list works, and the issue's queries stay refused
    # against the real database.
    await opened.catalog.add_connection(tenant, name="shop", driver="postgresql", dsn=shop_dsn)
    ok = await opened.executor.invoke(Call(tenant, "shop.query", {"sql": "SELECT count(*) FROM shop.items"}))
    assert ok.ok and ok.result["rows"] == [[1200]], ok.error_message
    for sql in ISSUE_18_QUERIES:
        out = await opened.executor.invoke(Call(tenant, "shop.query", {"sql": sql}))
        assert (out.error_code, out.error_field) == ("sql_refused", "sql"), sql


@pytest.mark.parametrize("dsn", [
    "postgresql://u:p@10.0.0.5/db", "postgresql://u@192.168.1.10:5433/db", "postgresql://u@172.16.0.1/db",
    "postgresql://u@169.254.169.254/db", "postgresql://u@[fd00::1]/db", "postgresql://u@[fec0::1]/db",
    "postgresql://u@[::ffff:10.0.0.1]/db", "postgres://u@0.0.0.0/db", "postgresql://u@localhost/db",
])
async def test_tools_sql_private_hosts_refused_without_connecting(dsn, monkeypatch):
    """The decision alone: nothing is contacted (create_pool would fail the test)."""
    def no_connection(*args, **kwargs):
        pytest.fail("a refused DSN must not be connected to")

    monkeypatch.setattr("asyncpg.create_pool", no_connection)
    with pytest.raises(SsrfBlocked) as err:
        await pg_dsn.vet(dsn, PrivateTargets())
    assert err.value.field == "dsn"


async def test_tools_sql_allow_list_and_dsn_form(monkeypatch):
    async def fake_getaddrinfo(self, host, port, **kw):   # no DNS query leaves the machine
        assert host == "db.corp"
        return [(2, 1, 6, "", ("10.9.9.9", port))]

    monkeypatch.setattr("asyncio.BaseEventLoop.getaddrinfo", fake_getaddrinfo)
    allowed = PrivateTargets.parse("10.0.0.0/8,db.corp:5432")
    _, ip = await pg_dsn.vet("postgresql://u:p@10.1.2.3:6543/app", allowed)
    assert ip == "10.1.2.3"   # decided, not connected: the caller pins this address
    ep, ip = await pg_dsn.vet("postgresql://u:s%40cret@db.corp/app", allowed)   # a listed name, default port
    assert (ep.host, ep.port, ep.password, ip) == ("db.corp", 5432, "s@cret", "10.9.9.9")
    with pytest.raises(SsrfBlocked):
        await pg_dsn.vet("postgresql://u@192.168.0.1/app", allowed)
    for bad in ("postgresql:///loom", "postgresql://u@/loom?host=/var/run/postgresql",
                "postgresql://u@%2Fvar%2Frun%2Fpostgresql/loom", "postgresql://u@h1:5432,h2:5432/db",
                "postgresql://u@db.corp/app?host=127.0.0.1", "postgresql://u@db.corp/app?passfile=/root/.pgpass",
                "postgresql://u@db.corp/app?sslkey=/etc/shadow", "mysql://u@db.corp/app"):
        with pytest.raises(InvalidArguments) as err:
            pg_dsn.endpoint(bad)
        assert err.value.field == "dsn", bad
