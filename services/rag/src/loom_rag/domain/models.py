"""The records the RAG service keeps and returns: datasets, documents, segments, search hits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from loom_common.events import DocumentStatus
from loom_rag.domain.chunking import ChunkingConfig


class SearchMethod(StrEnum):
    VECTOR = "vector"
    FULL_TEXT = "full_text"
    HYBRID = "hybrid"


@dataclass(frozen=True)
class Dataset:
    id: str
    tenant_id: str
    name: str
    description: str
    embedding_model: str
    embedding_dim: int
    process_rule: ChunkingConfig
    search_method: SearchMethod
    text_search_config: str
    created_at: datetime
    updated_at: datetime
    document_count: int = 0
    word_count: int = 0


@dataclass(frozen=True)
class Document:
    id: str
    tenant_id: str
    dataset_id: str
    name: str
    position: int
    data_source_type: str  # "text" | "upload_file"
    file_key: str
    mime_type: str
    size_bytes: int
    process_rule: ChunkingConfig
    metadata: dict[str, Any]
    status: DocumentStatus
    progress: float
    error: str | None
    revision: int
    enabled: bool
    word_count: int
    tokens: int
    segments_total: int
    segments_done: int
    created_at: datetime
    updated_at: datetime
    processing_started_at: datetime | None
    completed_at: datetime | None
    archived: bool = False  # Dify's archive: kept, not retrieved


@dataclass(frozen=True)
class Segment:
    id: str
    tenant_id: str
    dataset_id: str
    document_id: str
    position: int
    content: str
    parent_content: str | None
    word_count: int
    tokens: int
    enabled: bool
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Chunk:
    """A piece of a document ready to embed: what the splitter produces."""

    content: str
    tokens: int
    parent_content: str | None = None


@dataclass(frozen=True)
class MetadataFilter:
    key: str
    op: str  # one of OPS (search.filter_sql says what each means)
    value: Any

    OPS = ("eq", "ne", "in", "not_in", "contains", "not_contains", "starts_with", "ends_with", "empty", "not_empty",
           "gt", "lt", "ge", "le")


@dataclass(frozen=True)
class Hit:
    """One retrieved segment with its score (higher is better, 0..1)."""

    segment_id: str
    document_id: str
    dataset_id: str
    content: str
    position: int
    document_name: str
    metadata: dict[str, Any]
    parent_content: str | None
    score: float


@dataclass(frozen=True)
class Page:
    items: list
    total: int
    page: int
    limit: int

    @property
    def has_more(self) -> bool:
        return self.page * self.limit < self.total


@dataclass(frozen=True)
class RetrievalQuery:
    tenant_id: str
    dataset_ids: list[str]
    query: str
    method: SearchMethod | None = None  # None = the (first) dataset's default
    top_k: int = 4
    score_threshold: float | None = None
    vector_weight: float = 0.5
    keyword_weight: float = 0.5
    rerank: bool = False
    filters: list[MetadataFilter] = field(default_factory=list)
    filter_logic: str = "and"  # the filters all hold ("and") or any one does ("or")
    query_vector: list[float] | None = None
    query_embedding_model: str | None = None
