"""The segments table: chunks with their vector and tsvector, written a batch per transaction.

Ingested segments have deterministic ids (uuid5 of document, revision, position) and are
upserted, so a document re-indexed after a crash overwrites what the crashed attempt wrote
instead of adding to it. Segments a user adds by hand get random ids, positions after the
last one and revision 0, so they survive until the document is re-indexed from its source.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np
from pgvector import Vector

from loom_rag.domain.errors import NotFound
from loom_rag.domain.models import Segment
from loom_rag.store import rows

_NAMESPACE = uuid.UUID("6f1b6c36-35c5-4e4e-9a57-2f3f5d0c4a11")


def segment_id(document_id: str, revision: int, position: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{document_id}/{revision}/{position}"))


@dataclass(frozen=True)
class NewSegment:
    id: str
    position: int
    content: str
    tokens: int
    metadata: dict[str, Any]
    embedding: Sequence[float]
    parent_content: str | None = None


def word_count(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class DocumentSegments:
    """One document's new segments and what all of them share."""

    dataset_id: str
    document_id: str
    revision: int
    document_enabled: bool
    text_search_config: str
    segments: Sequence[NewSegment]


# One statement for any number of segments of any documents of one tenant: the rows travel as
# column arrays (binary, vectors included) and Postgres computes each tsvector. Ids must be
# distinct within a call (ON CONFLICT cannot touch a row twice in one statement).
_UPSERT = """
INSERT INTO segments (id, tenant_id, dataset_id, document_id, revision, position, content, parent_content,
                      word_count, tokens, document_enabled, metadata, embedding_model, embedding_dim, embedding, tsv)
SELECT s.id, $1, s.dataset_id, s.document_id, s.revision, s.position, s.content, s.parent_content, s.word_count,
       s.tokens, s.document_enabled, s.metadata, $2, vector_dims(s.embedding), s.embedding,
       to_tsvector(s.config::regconfig, s.content)
FROM unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::int[], $7::int[], $8::text[], $9::text[], $10::int[],
            $11::int[], $12::bool[], $13::jsonb[], $14::vector[], $15::text[])
     AS s(id, dataset_id, document_id, revision, position, content, parent_content, word_count, tokens,
          document_enabled, metadata, embedding, config)
ON CONFLICT (id) DO UPDATE SET content = EXCLUDED.content, parent_content = EXCLUDED.parent_content,
        word_count = EXCLUDED.word_count, tokens = EXCLUDED.tokens, metadata = EXCLUDED.metadata,
        embedding_model = EXCLUDED.embedding_model, embedding_dim = EXCLUDED.embedding_dim,
        embedding = EXCLUDED.embedding, tsv = EXCLUDED.tsv, updated_at = now()"""


async def upsert_many(conn: asyncpg.Connection, *, tenant_id: str, embedding_model: str,
                      documents: Sequence[DocumentSegments]) -> None:
    """Write (or overwrite) the segments of several documents of `tenant_id` in one statement."""
    columns: list[list[Any]] = [[] for _ in range(13)]
    for d in documents:
        meta_cache: dict[int, str] = {}  # a document's segments mostly share one metadata object
        for s in d.segments:
            meta = meta_cache.get(id(s.metadata))
            if meta is None:
                meta = meta_cache[id(s.metadata)] = json.dumps(s.metadata)
            row = (s.id, d.dataset_id, d.document_id, d.revision, s.position, s.content, s.parent_content,
                   word_count(s.content), s.tokens, d.document_enabled, meta,
                   Vector(np.asarray(s.embedding, dtype=np.float32)), d.text_search_config)
            for column, value in zip(columns, row, strict=True):
                column.append(value)
    if columns[0]:
        await conn.execute(_UPSERT, tenant_id, embedding_model, *columns)


async def upsert(conn: asyncpg.Connection, *, tenant_id: str, dataset_id: str, document_id: str, revision: int,
                 document_enabled: bool, embedding_model: str, text_search_config: str,
                 segments: Sequence[NewSegment]) -> None:
    await upsert_many(conn, tenant_id=tenant_id, embedding_model=embedding_model, documents=[DocumentSegments(
        dataset_id, document_id, revision, document_enabled, text_search_config, segments)])


async def delete_other_revisions(conn: asyncpg.Connection, tenant_id: str, document_id: str, revision: int) -> None:
    await conn.execute("DELETE FROM segments WHERE tenant_id = $1 AND document_id = $2::uuid AND revision <> $3",
                       tenant_id, document_id, revision)


async def delete_unlisted(conn: asyncpg.Connection, tenant_id: str, document_id: str, revision: int,
                         ingested_ids: Sequence[str]) -> None:
    """Drop segments of this revision that an earlier attempt wrote and this one did not."""
    await conn.execute(
        "DELETE FROM segments WHERE tenant_id = $1 AND document_id = $2::uuid AND revision = $3 "
        "AND NOT (id = ANY($4::uuid[]))", tenant_id, document_id, revision, list(ingested_ids))


async def count(conn: asyncpg.Connection, tenant_id: str, document_id: str) -> int:
    return await conn.fetchval("SELECT count(*) FROM segments WHERE tenant_id = $1 AND document_id = $2::uuid",
                               tenant_id, document_id)


async def next_position(conn: asyncpg.Connection, tenant_id: str, document_id: str) -> int:
    return await conn.fetchval("SELECT coalesce(max(position), 0) + 1 FROM segments "
                               "WHERE tenant_id = $1 AND document_id = $2::uuid", tenant_id, document_id)


async def list_(conn: asyncpg.Connection, tenant_id: str, document_id: str, *, keyword: str,
                enabled: bool | None, offset: int, limit: int,
                parent_content: str | None = None) -> tuple[list[Segment], int]:
    where = ("tenant_id = $1 AND document_id = $2::uuid AND content ILIKE $3 "
             "AND ($4::boolean IS NULL OR enabled = $4) AND ($5::text IS NULL OR parent_content = $5)")
    args = [tenant_id, document_id, f"%{keyword}%" if keyword else "%", enabled, parent_content]
    total = await conn.fetchval(f"SELECT count(*) FROM segments WHERE {where}", *args)
    found = await conn.fetch(f"SELECT * FROM segments WHERE {where} ORDER BY position OFFSET $6 LIMIT $7",
                             *args, offset, limit)
    return [rows.segment(r) for r in found], total


async def get(conn: asyncpg.Connection, tenant_id: str, document_id: str, segment_id_: str) -> Segment:
    r = await conn.fetchrow("SELECT * FROM segments WHERE tenant_id = $1 AND document_id = $2::uuid AND id = $3::uuid",
                            tenant_id, document_id, segment_id_)
    if r is None:
        raise NotFound(f"segment {segment_id_} not found")
    return rows.segment(r)


async def update(conn: asyncpg.Connection, seg: Segment, *, content: str | None, tokens: int | None,
                 embedding: Sequence[float] | None, enabled: bool | None, metadata: dict[str, Any] | None,
                 text_search_config: str) -> Segment:
    r = await conn.fetchrow(
        """UPDATE segments SET content = coalesce($3, content), tokens = coalesce($4, tokens),
                  word_count = CASE WHEN $3::text IS NULL THEN word_count ELSE $5 END,
                  embedding = coalesce($6, embedding), tsv = CASE WHEN $3::text IS NULL THEN tsv
                                                                ELSE to_tsvector($7::regconfig, $3) END,
                  enabled = coalesce($8, enabled), metadata = coalesce($9::jsonb, metadata), updated_at = now()
           WHERE tenant_id = $1 AND id = $2::uuid RETURNING *""",
        seg.tenant_id, seg.id, content, tokens, word_count(content or ""),
        np.asarray(embedding, dtype=np.float32) if embedding is not None else None, text_search_config,
        enabled, json.dumps(metadata) if metadata is not None else None)
    return rows.segment(r)


async def delete(conn: asyncpg.Connection, tenant_id: str, document_id: str, segment_id_: str) -> None:
    result = await conn.execute("DELETE FROM segments WHERE tenant_id = $1 AND document_id = $2::uuid "
                                "AND id = $3::uuid", tenant_id, document_id, segment_id_)
    if result.endswith(" 0"):
        raise NotFound(f"segment {segment_id_} not found")
