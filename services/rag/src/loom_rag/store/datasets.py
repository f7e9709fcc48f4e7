"""The datasets table, and the per-dimension HNSW indexes datasets need."""

from __future__ import annotations

import asyncpg

from loom_rag.domain.chunking import ChunkingConfig
from loom_rag.domain.errors import AlreadyExists, NotFound
from loom_rag.domain.models import Dataset, SearchMethod
from loom_rag.store import rows

_SELECT = """
SELECT ds.*,
       (SELECT count(*) FROM documents d WHERE d.tenant_id = ds.tenant_id AND d.dataset_id = ds.id) AS document_count,
       (SELECT coalesce(sum(d.word_count), 0) FROM documents d
         WHERE d.tenant_id = ds.tenant_id AND d.dataset_id = ds.id) AS word_count
FROM datasets ds"""


async def ensure_vector_index(pool: asyncpg.Pool, dim: int) -> None:
    """A partial HNSW index for vectors of `dim` (pgvector indexes need a fixed dimension).

    Runs as the service's own login (index owner), outside tenant transactions. Building on a
    table with no rows of that dimension is quick; the 384-d one comes with the migration.
    """
    dim = int(dim)
    # Looked up first: CREATE INDEX takes a SHARE lock on segments even when the index exists,
    # and that lock waits behind a dataset's own index being built CONCURRENTLY (minutes on a
    # big table: retrieval/index_keeper.py), and can deadlock with it (the build waits for this
    # transaction to end): dataset creation failed with "deadlock detected". Only a dimension
    # no dataset had before still takes the lock.
    if await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", f"segments_embedding_{dim}"):
        return
    await pool.execute(
        f"CREATE INDEX IF NOT EXISTS segments_embedding_{dim} ON segments "
        f"USING hnsw ((embedding::vector({dim})) vector_cosine_ops) WITH (m = 16, ef_construction = 64) "
        f"WHERE embedding_dim = {dim}")


async def create(conn: asyncpg.Connection, *, id: str, tenant_id: str, name: str, description: str,
                 embedding_model: str, embedding_dim: int, process_rule: ChunkingConfig,
                 search_method: SearchMethod, text_search_config: str) -> Dataset:
    try:
        await conn.execute(
            """INSERT INTO datasets (id, tenant_id, name, description, embedding_model, embedding_dim,
                                     process_rule, search_method, text_search_config)
               VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)""",
            id, tenant_id, name, description, embedding_model, embedding_dim, process_rule.model_dump_json(),
            search_method.value, text_search_config)
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists(f"a dataset named {name!r} already exists") from exc
    return await get(conn, tenant_id, id)


async def get(conn: asyncpg.Connection, tenant_id: str, dataset_id: str) -> Dataset:
    r = await conn.fetchrow(f"{_SELECT} WHERE ds.tenant_id = $1 AND ds.id = $2::uuid", tenant_id, dataset_id)
    if r is None:
        raise NotFound(f"dataset {dataset_id} not found")
    return rows.dataset(r)


async def get_many(conn: asyncpg.Connection, tenant_id: str, dataset_ids: list[str]) -> list[Dataset]:
    found = await conn.fetch(f"{_SELECT} WHERE ds.tenant_id = $1 AND ds.id = ANY($2::uuid[])",
                             tenant_id, dataset_ids)
    by_id = {str(r["id"]): rows.dataset(r) for r in found}
    missing = [d for d in dataset_ids if d not in by_id]
    if missing:
        raise NotFound(f"dataset {missing[0]} not found")
    return [by_id[d] for d in dataset_ids]


async def lookup_many(conn: asyncpg.Connection, tenant_id: str, dataset_ids: list[str]) -> list[Dataset]:
    """Like get_many without the counts: the one-round-trip lookup retrieval needs."""
    found = await conn.fetch("SELECT * FROM datasets WHERE tenant_id = $1 AND id = ANY($2::uuid[])",
                             tenant_id, dataset_ids)
    by_id = {str(r["id"]): rows.dataset(r) for r in found}
    missing = [d for d in dataset_ids if d not in by_id]
    if missing:
        raise NotFound(f"dataset {missing[0]} not found")
    return [by_id[d] for d in dataset_ids]


async def list_(conn: asyncpg.Connection, tenant_id: str, *, keyword: str, offset: int, limit: int,
                ids: list[str] | None = None) -> tuple[list[Dataset], int]:
    pattern = f"%{keyword}%" if keyword else "%"
    only = "AND ($3::uuid[] IS NULL OR ds.id = ANY($3::uuid[]))"
    total = await conn.fetchval(f"SELECT count(*) FROM datasets ds WHERE ds.tenant_id = $1 AND ds.name ILIKE $2 {only}",
                                tenant_id, pattern, ids)
    found = await conn.fetch(f"{_SELECT} WHERE ds.tenant_id = $1 AND ds.name ILIKE $2 {only} "
                             "ORDER BY ds.created_at DESC, ds.id OFFSET $4 LIMIT $5", tenant_id, pattern, ids, offset,
                             limit)
    return [rows.dataset(r) for r in found], total


async def update(conn: asyncpg.Connection, tenant_id: str, dataset_id: str, *, name: str | None,
                 description: str | None, process_rule: ChunkingConfig | None,
                 search_method: SearchMethod | None) -> Dataset:
    try:
        status = await conn.execute(
            """UPDATE datasets SET name = coalesce($3, name), description = coalesce($4, description),
                      process_rule = coalesce($5::jsonb, process_rule),
                      search_method = coalesce($6, search_method), updated_at = now()
               WHERE tenant_id = $1 AND id = $2::uuid""",
            tenant_id, dataset_id, name, description,
            process_rule.model_dump_json() if process_rule else None, search_method.value if search_method else None)
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists(f"a dataset named {name!r} already exists") from exc
    if status.endswith(" 0"):
        raise NotFound(f"dataset {dataset_id} not found")
    return await get(conn, tenant_id, dataset_id)


async def delete(conn: asyncpg.Connection, tenant_id: str, dataset_id: str) -> None:
    status = await conn.execute("DELETE FROM datasets WHERE tenant_id = $1 AND id = $2::uuid", tenant_id, dataset_id)
    if status.endswith(" 0"):
        raise NotFound(f"dataset {dataset_id} not found")
