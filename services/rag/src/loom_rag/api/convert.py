"""Domain records <-> rag.v1 messages (field names follow Dify's knowledge API)."""

from __future__ import annotations

import json
from datetime import datetime

from loom.rag.v1 import rag_pb2 as pb
from loom_rag.domain.chunking import DEFAULT_SEPARATORS, ChunkingConfig
from loom_rag.domain.errors import InvalidArgument
from loom_rag.domain.models import Dataset, Document, Hit, MetadataFilter, SearchMethod, Segment
from loom_rag.domain.validation import json_value

_METHODS = {SearchMethod.VECTOR: pb.SEARCH_METHOD_VECTOR, SearchMethod.FULL_TEXT: pb.SEARCH_METHOD_FULL_TEXT,
            SearchMethod.HYBRID: pb.SEARCH_METHOD_HYBRID}
_METHODS_BACK = {v: k for k, v in _METHODS.items()}


def ts(value: datetime | None) -> int:
    return int(value.timestamp()) if value else 0


def method_from(value: int) -> SearchMethod | None:
    return _METHODS_BACK.get(value)


def rule_from(msg: pb.ProcessRule, has: bool) -> ChunkingConfig | None:
    """A process rule from the wire; None when the request did not set one."""
    if not has:
        return None
    fields: dict = {"remove_extra_spaces": msg.remove_extra_spaces, "remove_urls_emails": msg.remove_urls_emails}
    if msg.mode:
        fields["mode"] = msg.mode
    if msg.mode in ("", "automatic"):
        return ChunkingConfig(**fields)
    for name in ("max_tokens", "subchunk_max_tokens"):  # 0 = the default size
        if getattr(msg, name):
            fields[name] = getattr(msg, name)
    # In custom modes an overlap of 0 means none (proto3 cannot tell unset from 0).
    fields["chunk_overlap"] = msg.chunk_overlap
    fields["subchunk_chunk_overlap"] = msg.subchunk_chunk_overlap
    if msg.separators:
        fields["separators"] = [*msg.separators, *([""] if "" not in msg.separators else [])]
    if msg.subchunk_separators:
        fields["subchunk_separators"] = [*msg.subchunk_separators, ""]
    if msg.parent_mode:
        fields["parent_mode"] = msg.parent_mode
    return ChunkingConfig(**fields)


def rule_to(rule: ChunkingConfig) -> pb.ProcessRule:
    return pb.ProcessRule(mode=rule.mode, remove_extra_spaces=rule.remove_extra_spaces,
                          remove_urls_emails=rule.remove_urls_emails,
                          separators=rule.separators if rule.separators != DEFAULT_SEPARATORS else [],
                          max_tokens=rule.max_tokens, chunk_overlap=rule.chunk_overlap, parent_mode=rule.parent_mode,
                          subchunk_separators=rule.subchunk_separators, subchunk_max_tokens=rule.subchunk_max_tokens,
                          subchunk_chunk_overlap=rule.subchunk_chunk_overlap)


def dataset_to(d: Dataset) -> pb.Dataset:
    return pb.Dataset(id=d.id, tenant_id=d.tenant_id, name=d.name, description=d.description,
                      indexing_technique="high_quality", embedding_model=d.embedding_model,
                      embedding_model_provider="loom", embedding_dimension=d.embedding_dim,
                      process_rule=rule_to(d.process_rule), search_method=_METHODS[d.search_method],
                      text_search_config=d.text_search_config, document_count=d.document_count,
                      word_count=d.word_count, created_at=ts(d.created_at), updated_at=ts(d.updated_at))


def document_to(d: Document) -> pb.Document:
    return pb.Document(id=d.id, tenant_id=d.tenant_id, dataset_id=d.dataset_id, name=d.name, position=d.position,
                       data_source_type=d.data_source_type, indexing_status=d.status.value, progress=d.progress,
                       error=d.error or "", enabled=d.enabled, revision=d.revision, word_count=d.word_count,
                       tokens=d.tokens, completed_segments=d.segments_done, total_segments=d.segments_total,
                       mime_type=d.mime_type, size_bytes=d.size_bytes, metadata_json=json.dumps(d.metadata),
                       doc_form="hierarchical_model" if d.process_rule.hierarchical else "text_model",
                       created_at=ts(d.created_at), updated_at=ts(d.updated_at),
                       processing_started_at=ts(d.processing_started_at), completed_at=ts(d.completed_at),
                       archived=d.archived)


def segment_to(s: Segment) -> pb.Segment:
    return pb.Segment(id=s.id, tenant_id=s.tenant_id, dataset_id=s.dataset_id, document_id=s.document_id,
                      position=s.position, content=s.content, word_count=s.word_count, tokens=s.tokens,
                      enabled=s.enabled, status="completed", metadata_json=json.dumps(s.metadata),
                      parent_content=s.parent_content or "", created_at=ts(s.created_at), updated_at=ts(s.updated_at))


def hit_to(h: Hit) -> pb.RetrievedChunk:
    return pb.RetrievedChunk(segment_id=h.segment_id, document_id=h.document_id, dataset_id=h.dataset_id,
                             content=h.content, score=h.score, position=h.position, document_name=h.document_name,
                             metadata_json=json.dumps(h.metadata), parent_content=h.parent_content or "")


def filter_from(f: pb.MetadataFilter) -> MetadataFilter:
    if not f.key:
        raise InvalidArgument("filters.key", "is required")
    if f.op not in MetadataFilter.OPS:
        raise InvalidArgument("filters.op", f"unknown operator {f.op!r}; use one of {', '.join(MetadataFilter.OPS)}")
    return MetadataFilter(key=f.key, op=f.op, value=json_value("filters.value_json", f.value_json))
