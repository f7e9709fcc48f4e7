"""Per-dataset partial HNSW indexes: their names, what a search needs to know of them, and the
concurrent builds and drops IndexKeeper runs (domain/vector_routes.py says why they exist).

An own index is a partial expression index on the same expression as the shared one:

    CREATE INDEX CONCURRENTLY segments_embedding_384_ds_<dataset hex> ON segments
        USING hnsw ((embedding::vector(384)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)
        WHERE dataset_id = '<dataset>' AND embedding_dim = 384

The catalog is the only record of them (no table of ours to drift from it): a search asks
pg_index whether the dataset's index is valid. CONCURRENTLY takes no lock that blocks writes,
so ingestion goes on during a build; a build that fails (or whose process dies) leaves an
INVALID index, which searches ignore and the next pass drops and builds again.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from loom_rag.domain.errors import NotFound
from loom_rag.domain.models import Dataset
from loom_rag.domain.vector_routes import DatasetScope
from loom_rag.store import rows

PREFIX = "segments_embedding_"
# One keeper pass at a time across rag replicas (a session-level advisory lock; any constant
# that no other Loom code uses: "loomidx" in ASCII).
KEEPER_LOCK = 0x6C6F6F6D696478
# Memory for one HNSW build: the graph of a dataset up to ~300k 384-d vectors fits, which is
# what makes the build fast (pgvector warns and slows down past it).
BUILD_MEMORY = "512MB"


def index_name(dim: int, dataset_id: str) -> str:
    """`segments_embedding_<dim>_ds_<32 hex>`: at most 55 characters (Postgres allows 63)."""
    return f"{PREFIX}{int(dim)}_ds_{uuid.UUID(dataset_id).hex}"


# A dataset's rows (written segments of its documents) and whether its own index is valid.
_SCOPE_COLUMNS = f"""
    (SELECT coalesce(sum(d.segments_done), 0) FROM documents d
      WHERE d.tenant_id = ds.tenant_id AND d.dataset_id = ds.id) AS scope_rows,
    EXISTS (SELECT 1 FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
             WHERE c.relname = '{PREFIX}' || ds.embedding_dim || '_ds_' || replace(ds.id::text, '-', '')
               AND c.relnamespace = current_schema()::regnamespace AND i.indisvalid AND i.indisready
    ) AS scope_own_index"""


def _scope(r: asyncpg.Record) -> DatasetScope:
    return DatasetScope(str(r["id"]), int(r["scope_rows"]), r["scope_own_index"])


async def lookup(conn: asyncpg.Connection, tenant_id: str, dataset_ids: list[str]
                 ) -> tuple[list[Dataset], dict[str, DatasetScope]]:
    """datasets.lookup_many plus each dataset's scope, in the same single round trip (a search
    pays nothing extra for its routing)."""
    found = await conn.fetch(f"SELECT ds.*, {_SCOPE_COLUMNS} FROM datasets ds "
                             "WHERE ds.tenant_id = $1 AND ds.id = ANY($2::uuid[])", tenant_id, dataset_ids)
    by_id = {str(r["id"]): r for r in found}
    missing = [d for d in dataset_ids if d not in by_id]
    if missing:
        raise NotFound(f"dataset {missing[0]} not found")
    return [rows.dataset(by_id[d]) for d in dataset_ids], {d: _scope(by_id[d]) for d in dataset_ids}


async def scopes(conn: asyncpg.Connection, tenant_id: str, dataset_ids: list[str], dim: int) -> list[DatasetScope]:
    """The scopes of the tenant's datasets of dimension `dim` that exist, in the order given."""
    found = await conn.fetch(f"SELECT ds.id, {_SCOPE_COLUMNS} FROM datasets ds WHERE ds.tenant_id = $1 "
                             "AND ds.id = ANY($2::uuid[]) AND ds.embedding_dim = $3", tenant_id, dataset_ids, int(dim))
    by_id = {str(r["id"]): _scope(r) for r in found}
    return [by_id[d] for d in dataset_ids if d in by_id]


@dataclass(frozen=True)
class DatasetSize:
    dataset_id: str
    dim: int
    rows: int
    dimension_rows: int  # every dataset's rows of this dimension together


@dataclass(frozen=True)
class OwnIndex:
    name: str
    valid: bool


async def sizes(conn: asyncpg.Connection) -> list[DatasetSize]:
    """Every dataset's rows, all tenants (the service's own login: the table owner)."""
    found = await conn.fetch(
        """SELECT ds.id::text AS id, ds.embedding_dim AS dim, coalesce(sum(d.segments_done), 0) AS rows,
                  sum(coalesce(sum(d.segments_done), 0)) OVER (PARTITION BY ds.embedding_dim) AS dimension_rows
           FROM datasets ds LEFT JOIN documents d ON d.dataset_id = ds.id AND d.tenant_id = ds.tenant_id
           GROUP BY ds.id, ds.embedding_dim""")
    return [DatasetSize(r["id"], r["dim"], int(r["rows"]), int(r["dimension_rows"])) for r in found]


async def existing(conn: asyncpg.Connection) -> list[OwnIndex]:
    found = await conn.fetch(
        r"""SELECT c.relname AS name, i.indisvalid AND i.indisready AS valid
            FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
            WHERE c.relnamespace = current_schema()::regnamespace AND i.indrelid = 'segments'::regclass
              AND c.relname LIKE 'segments\_embedding\_%\_ds\_%'""")
    return [OwnIndex(r["name"], r["valid"]) for r in found]


async def build(conn: asyncpg.Connection, dim: int, dataset_id: str) -> None:
    """Build one dataset's index without blocking writes. Not in a transaction (CONCURRENTLY
    cannot be); it waits for transactions already running on the table, never blocks new ones."""
    dim, ds = int(dim), str(uuid.UUID(dataset_id))  # both validated: they are spliced into DDL
    await conn.execute(f"SET maintenance_work_mem = '{BUILD_MEMORY}'")
    try:
        await conn.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {index_name(dim, ds)} ON segments "
            f"USING hnsw ((embedding::vector({dim})) vector_cosine_ops) WITH (m = 16, ef_construction = 64) "
            f"WHERE dataset_id = '{ds}'::uuid AND embedding_dim = {dim}")
    finally:
        await conn.execute("RESET maintenance_work_mem")


async def drop(conn: asyncpg.Connection, name: str) -> None:
    if not name.startswith(PREFIX) or not name.replace("_", "").isalnum():
        raise ValueError(f"not an own index: {name!r}")
    await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


@contextlib.asynccontextmanager
async def keeper_lock(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection | None]:
    """A connection holding the keeper lock, or None when another replica's keeper holds it."""
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", KEEPER_LOCK):
            yield None
            return
        try:
            yield conn
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", KEEPER_LOCK)
