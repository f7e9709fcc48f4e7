"""Row -> domain record conversions shared by the table modules."""

from __future__ import annotations

import json

import asyncpg

from loom_common.events import DocumentStatus
from loom_rag.domain.chunking import ChunkingConfig
from loom_rag.domain.models import Dataset, Document, SearchMethod, Segment


def loads(value) -> dict:
    return json.loads(value) if isinstance(value, str) else (value or {})


def dataset(r: asyncpg.Record) -> Dataset:
    return Dataset(id=str(r["id"]), tenant_id=r["tenant_id"], name=r["name"], description=r["description"],
                   embedding_model=r["embedding_model"], embedding_dim=r["embedding_dim"],
                   process_rule=ChunkingConfig.model_validate(loads(r["process_rule"])),
                   search_method=SearchMethod(r["search_method"]), text_search_config=r["text_search_config"],
                   created_at=r["created_at"], updated_at=r["updated_at"],
                   document_count=r.get("document_count") or 0, word_count=r.get("word_count") or 0)


def document(r: asyncpg.Record) -> Document:
    return Document(id=str(r["id"]), tenant_id=r["tenant_id"], dataset_id=str(r["dataset_id"]), name=r["name"],
                    position=r["position"], data_source_type=r["data_source_type"], file_key=r["file_key"],
                    mime_type=r["mime_type"], size_bytes=r["size_bytes"],
                    process_rule=ChunkingConfig.model_validate(loads(r["process_rule"])),
                    metadata=loads(r["metadata"]), status=DocumentStatus(r["status"]), progress=r["progress"],
                    error=r["error"], revision=r["revision"], enabled=r["enabled"], word_count=r["word_count"],
                    tokens=r["tokens"], segments_total=r["segments_total"], segments_done=r["segments_done"],
                    created_at=r["created_at"], updated_at=r["updated_at"],
                    processing_started_at=r["processing_started_at"], completed_at=r["completed_at"],
                    archived=r.get("archived", False))


def segment(r: asyncpg.Record) -> Segment:
    return Segment(id=str(r["id"]), tenant_id=r["tenant_id"], dataset_id=str(r["dataset_id"]),
                   document_id=str(r["document_id"]), position=r["position"], content=r["content"],
                   parent_content=r["parent_content"], word_count=r["word_count"], tokens=r["tokens"],
                   enabled=r["enabled"], metadata=loads(r["metadata"]), created_at=r["created_at"],
                   updated_at=r["updated_at"])
