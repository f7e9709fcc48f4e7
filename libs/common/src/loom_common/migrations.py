"""Versioned SQL migrations, one set per service schema, applied at start-up.

A service keeps `NNNN_description.sql` files in a package (e.g. `loom_rag.migrations`).
`apply_migrations` creates the schema, records applied versions in
`<schema>.schema_migrations`, and applies the missing files in order, each in its own
transaction, under an advisory lock so replicas starting together apply each file once.
A file already applied whose text changed is an error: migrations are append-only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from loom_common.logging import get_logger

log = get_logger(__name__)

_NAME = re.compile(r"^(\d{4})_[\w-]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    pass


def load_migrations(package: str) -> list[Migration]:
    found = []
    for entry in resources.files(package).iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {package}: {versions}")
    return found


async def apply_migrations(dsn: str, schema: str, package: str) -> list[str]:
    """Apply the package's pending migrations to `schema`; returns the names applied."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
        raise MigrationError(f"bad schema name {schema!r}")
    migrations = load_migrations(package)
    applied_now: list[str] = []
    conn = await asyncpg.connect(dsn, server_settings={"search_path": f"{schema},public"})
    try:
        lock_key = int.from_bytes(hashlib.sha256(schema.encode()).digest()[:4], "big")
        await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
        try:
            # A service's role owns its schema (made by devstack.db_roles) but may not create
            # schemas: CREATE SCHEMA checks that right even when the schema exists.
            if not await conn.fetchval("SELECT true FROM pg_namespace WHERE nspname = $1", schema):
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(f"""
                CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())""")
            rows = await conn.fetch(f'SELECT version, checksum FROM "{schema}".schema_migrations')
            done = {r["version"]: r["checksum"] for r in rows}
            for mig in migrations:
                if mig.version in done:
                    if done[mig.version] != mig.checksum:
                        raise MigrationError(f"{schema}/{mig.name} changed after it was applied")
                    continue
                async with conn.transaction():
                    await conn.execute(mig.sql)
                    await conn.execute(
                        f'INSERT INTO "{schema}".schema_migrations (version, name, checksum) VALUES ($1, $2, $3)',
                        mig.version, mig.name, mig.checksum)
                applied_now.append(mig.name)
                log.info("migration applied", schema=schema, migration=mig.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
    finally:
        await conn.close()
    return applied_now
