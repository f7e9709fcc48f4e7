"""Postgres access: the database and pgvector made ready, pools per service schema.

Each service owns one schema (`gateway`, `orchestrator`, `rag`, `inference`, `tools`) and
reads no other's tables. A pool's connections put that schema first on `search_path`, so
service SQL names its own tables unqualified.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pgvector.asyncpg import register_vector

from loom_common import pool_metrics
from loom_common.logging import get_logger

log = get_logger(__name__)


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/") or "postgres"


async def ensure_database(dsn: str) -> None:
    """Create the database if missing (needs CREATEDB) and the `vector` extension in it."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(_with_database(dsn, "postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{database_name(dsn)}"')
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            pass  # another service won the race
        finally:
            await admin.close()
        conn = await asyncpg.connect(dsn)
    try:
        # Serialise with other services starting at the same moment.
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(7342001)")
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    finally:
        await conn.close()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a released connection needs beyond asyncpg's own cleanup (an open transaction rolled
    back, listeners dropped): nothing. asyncpg's default also sends `RESET ALL; UNLISTEN *;
    CLOSE ALL; SELECT pg_advisory_unlock_all()`, one more round trip on every release, which
    Loom's pools never need: services set only transaction-local settings (`set_config(..,
    true)`, e.g. rag's `store/tenancy.py`), never LISTEN, and take advisory locks only per
    transaction (migrations use a connection of their own)."""


async def create_pool(dsn: str, *, schema: str, min_size: int = 1, max_size: int = 10,
                      vector: bool = True) -> asyncpg.Pool:
    async def init(conn: asyncpg.Connection) -> None:
        if vector:
            await register_vector(conn)

    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init, reset=_keep_session,
        server_settings={"search_path": f"{schema},public", "application_name": f"loom-{schema}"},
    )
    return pool_metrics.POOLS.track(pool, service=schema, dsn=dsn)  # /metrics: in use, idle, waiting
