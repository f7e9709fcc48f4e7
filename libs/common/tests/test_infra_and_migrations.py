"""loom_common against the real embedded servers: database + pgvector, migrations, streams."""

from __future__ import annotations

import asyncpg
import pytest
from faststream.nats import NatsBroker

from loom_common import bus, db, messaging
from loom_common.devstack import infra
from loom_common.migrations import MigrationError, apply_migrations

pytestmark = pytest.mark.integration


async def test_database_has_pgvector(database_url: str) -> None:
    await db.ensure_database(database_url)
    pool = await db.create_pool(database_url, schema="public")
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TEMP TABLE v (e vector(3))")
            await conn.execute("INSERT INTO v VALUES ('[1,2,3]')")
            row = await conn.fetchval("SELECT e <=> '[1,2,3]' FROM v")
            assert row == pytest.approx(0.0)
    finally:
        await pool.close()


async def test_migrations_apply_once_and_refuse_edits(database_url: str, tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "migpkg_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "0001_first.sql").write_text("CREATE TABLE things (id int PRIMARY KEY);")
    (pkg / "0002_second.sql").write_text("ALTER TABLE things ADD COLUMN name text;")
    monkeypatch.syspath_prepend(str(tmp_path))
    await db.ensure_database(database_url)

    assert await apply_migrations(database_url, "demo_schema", "migpkg_demo") == [
        "0001_first.sql", "0002_second.sql"]
    assert await apply_migrations(database_url, "demo_schema", "migpkg_demo") == []
    conn = await asyncpg.connect(database_url)
    try:
        cols = await conn.fetch("SELECT column_name FROM information_schema.columns "
                                "WHERE table_schema='demo_schema' AND table_name='things'")
        assert {c["column_name"] for c in cols} == {"id", "name"}
    finally:
        await conn.close()

    (pkg / "0002_second.sql").write_text("ALTER TABLE things ADD COLUMN other text;")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await apply_migrations(database_url, "demo_schema", "migpkg_demo")


async def test_every_stream_is_declared(nats_url: str) -> None:
    broker = NatsBroker(nats_url)
    await broker.connect()
    try:
        await messaging.ensure_streams(broker)
        await messaging.ensure_streams(broker)  # idempotent
        js = broker.connection.jetstream()
        for stream in bus.ALL_STREAMS:
            info = await js.stream_info(stream.name)
            assert sorted(info.config.subjects) == sorted(stream.subjects)
    finally:
        await broker.stop()


def test_an_embedded_postgres_leaves_no_socket_dir_behind(tmp_path) -> None:
    pg = infra.EmbeddedPostgres(tmp_path / "pg").start()
    socket_dir = infra.socket_dir_path(tmp_path / "pg")
    assert any(socket_dir.iterdir())  # its socket lives there while it runs
    assert socket_dir.stat().st_mode & 0o777 == 0o700  # its user's alone, not world-writable
    pg.stop()
    assert not socket_dir.exists()


def test_the_embedded_postgres_url_skips_the_tls_ask_and_keeps_it_for_other_databases() -> None:
    url = infra.postgres_url(5432, "loom_x")
    assert url.endswith("/loom_x?sslmode=disable")  # the embedded server offers no TLS
    assert db.database_name(url) == "loom_x"
    assert db._with_database(url, "postgres").endswith("/postgres?sslmode=disable")
