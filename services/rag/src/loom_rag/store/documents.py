"""The documents table and its status state machine.

    waiting -> parsing -> splitting -> indexing -> completed
        any of those -> error (with a message)    any -> paused (a user disabled it mid-way)

Worker writes are conditional on the revision they work on: an edit (revision bumped) or a
delete makes them match nothing, and the worker stops.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from loom_common.events import DocumentStatus
from loom_rag.domain.chunking import ChunkingConfig
from loom_rag.domain.errors import NotFound
from loom_rag.domain.models import Document
from loom_rag.store import rows


async def create(conn: asyncpg.Connection, *, id: str, tenant_id: str, dataset_id: str, name: str,
                 data_source_type: str, file_key: str, mime_type: str, size_bytes: int,
                 process_rule: ChunkingConfig, metadata: dict[str, Any]) -> Document:
    r = await conn.fetchrow(
        """INSERT INTO documents (id, tenant_id, dataset_id, name, position, data_source_type, file_key,
                                  mime_type, size_bytes, process_rule, metadata)
           VALUES ($1, $2, $3::uuid, $4,
                   (SELECT coalesce(max(position), 0) + 1 FROM documents
                     WHERE tenant_id = $2 AND dataset_id = $3::uuid),
                   $5, $6, $7, $8, $9::jsonb, $10::jsonb)
           RETURNING *""",
        id, tenant_id, dataset_id, name, data_source_type, file_key, mime_type, size_bytes,
        process_rule.model_dump_json(), json.dumps(metadata))
    return rows.document(r)


async def get(conn: asyncpg.Connection, tenant_id: str, dataset_id: str | None, document_id: str,
              *, for_update: bool = False) -> Document:
    r = await conn.fetchrow(
        "SELECT * FROM documents WHERE tenant_id = $1 AND id = $2::uuid AND ($3::uuid IS NULL OR dataset_id = $3::uuid)"
        + (" FOR UPDATE" if for_update else ""), tenant_id, document_id, dataset_id)
    if r is None:
        raise NotFound(f"document {document_id} not found")
    return rows.document(r)


async def list_(conn: asyncpg.Connection, tenant_id: str, dataset_id: str, *, keyword: str, offset: int,
                limit: int) -> tuple[list[Document], int]:
    pattern = f"%{keyword}%" if keyword else "%"
    total = await conn.fetchval(
        "SELECT count(*) FROM documents WHERE tenant_id = $1 AND dataset_id = $2::uuid AND name ILIKE $3",
        tenant_id, dataset_id, pattern)
    found = await conn.fetch(
        "SELECT * FROM documents WHERE tenant_id = $1 AND dataset_id = $2::uuid AND name ILIKE $3 "
        "ORDER BY position DESC OFFSET $4 LIMIT $5", tenant_id, dataset_id, pattern, offset, limit)
    return [rows.document(r) for r in found], total


async def update_meta(conn: asyncpg.Connection, doc: Document, *, name: str | None,
                      metadata: dict[str, Any] | None) -> None:
    await conn.execute(
        "UPDATE documents SET name = coalesce($3, name), metadata = coalesce($4::jsonb, metadata), "
        "updated_at = now() WHERE tenant_id = $1 AND id = $2::uuid",
        doc.tenant_id, doc.id, name, json.dumps(metadata) if metadata is not None else None)
    if metadata is not None or name is not None:
        # Segments carry the document's name and metadata, so filters need no join. The keys
        # the document had are taken off first (a renamed or removed field must stop matching);
        # a segment's own keys (CreateSegments' metadata) stay.
        await conn.execute(
            "UPDATE segments SET metadata = (metadata - $5::text[] - 'document_name') || $3::jsonb || "
            "jsonb_build_object('document_name', $4::text), updated_at = now() "
            "WHERE tenant_id = $1 AND document_id = $2::uuid",
            doc.tenant_id, doc.id, json.dumps(metadata if metadata is not None else doc.metadata),
            name if name is not None else doc.name, list(doc.metadata))


async def new_revision(conn: asyncpg.Connection, doc: Document, *, file_key: str, mime_type: str,
                       size_bytes: int, data_source_type: str, process_rule: ChunkingConfig) -> int:
    """Point the document at new content and queue state; returns the new revision."""
    return await conn.fetchval(
        """UPDATE documents SET file_key = $3, mime_type = $4, size_bytes = $5, data_source_type = $6,
                  process_rule = $7::jsonb, revision = revision + 1, status = 'waiting', progress = 0,
                  error = NULL, segments_done = 0, segments_total = 0, completed_at = NULL, updated_at = now()
           WHERE tenant_id = $1 AND id = $2::uuid RETURNING revision""",
        doc.tenant_id, doc.id, file_key, mime_type, size_bytes, data_source_type, process_rule.model_dump_json())


async def delete(conn: asyncpg.Connection, tenant_id: str, dataset_id: str, document_id: str) -> Document:
    r = await conn.fetchrow("DELETE FROM documents WHERE tenant_id = $1 AND dataset_id = $2::uuid AND id = $3::uuid "
                            "RETURNING *", tenant_id, dataset_id, document_id)
    if r is None:
        raise NotFound(f"document {document_id} not found")
    return rows.document(r)


async def set_enabled(conn: asyncpg.Connection, tenant_id: str, dataset_id: str, document_ids: list[str],
                      enabled: bool) -> list[Document]:
    found = await conn.fetch(
        "UPDATE documents SET enabled = $4, updated_at = now() "
        "WHERE tenant_id = $1 AND dataset_id = $2::uuid AND id = ANY($3::uuid[]) RETURNING *",
        tenant_id, dataset_id, document_ids, enabled)
    if len(found) != len(set(document_ids)):
        missing = set(document_ids) - {str(r["id"]) for r in found}
        raise NotFound(f"document {sorted(missing)[0]} not found")
    await _sync_segments(conn, tenant_id, document_ids)
    return [rows.document(r) for r in found]


async def set_archived(conn: asyncpg.Connection, tenant_id: str, dataset_id: str, document_ids: list[str],
                       archived: bool) -> None:
    found = await conn.fetch(
        "UPDATE documents SET archived = $4, updated_at = now() "
        "WHERE tenant_id = $1 AND dataset_id = $2::uuid AND id = ANY($3::uuid[]) RETURNING id",
        tenant_id, dataset_id, document_ids, archived)
    if len(found) != len(set(document_ids)):
        missing = set(document_ids) - {str(r["id"]) for r in found}
        raise NotFound(f"document {sorted(missing)[0]} not found")
    await _sync_segments(conn, tenant_id, document_ids)


async def _sync_segments(conn: asyncpg.Connection, tenant_id: str, document_ids: list[str]) -> None:
    """Segments' search flag follows their document: enabled and not archived."""
    await conn.execute("UPDATE segments s SET document_enabled = d.enabled AND NOT d.archived FROM documents d "
                       "WHERE s.tenant_id = $1 AND s.document_id = ANY($2::uuid[]) AND d.id = s.document_id "
                       "AND d.tenant_id = $1", tenant_id, document_ids)


async def advance(conn: asyncpg.Connection, tenant_id: str, document_id: str, revision: int,
                  status: DocumentStatus, **fields: Any) -> bool:
    """Move a document being worked on (at `revision`) to `status`; False if it changed under us."""
    sets = ["status = $4", "updated_at = now()"]
    values: list[Any] = [tenant_id, document_id, revision, status.value]
    for name, value in fields.items():
        if name not in _ADVANCE_FIELDS:
            raise ValueError(name)
        values.append(value)
        sets.append(f"{name} = ${len(values)}")
    if status == DocumentStatus.PARSING:
        sets.append("processing_started_at = now()")
    if status == DocumentStatus.COMPLETED:
        sets.append("completed_at = now()")
    result = await conn.execute(
        f"UPDATE documents SET {', '.join(sets)} WHERE tenant_id = $1 AND id = $2::uuid AND revision = $3 "
        "AND status <> 'paused'", *values)
    return not result.endswith(" 0")


_ADVANCE_FIELDS = {"progress", "error", "segments_total", "segments_done", "word_count", "tokens"}
