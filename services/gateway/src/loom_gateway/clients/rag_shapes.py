"""Dify's knowledge JSON <-> rag.v1 messages: the request parts the gateway checks (process_rule,
search_method, metadata_filtering_conditions; a 400 naming the field) and the answer bodies
(dataset, document, segment, child chunk, pages). No I/O: clients/rag.py calls rag with these."""

from __future__ import annotations

import json

from pydantic import ValidationError

from loom.rag.v1 import rag_pb2 as pb
from loom_common.dsl.metadata_filters import MetadataFilteringConditions
from loom_gateway.domain.errors import BadRequest

SEARCH = {"semantic_search": pb.SEARCH_METHOD_VECTOR, "full_text_search": pb.SEARCH_METHOD_FULL_TEXT,
          "keyword_search": pb.SEARCH_METHOD_FULL_TEXT, "hybrid_search": pb.SEARCH_METHOD_HYBRID}
SEARCH_NAME = {pb.SEARCH_METHOD_UNSPECIFIED: "semantic_search", pb.SEARCH_METHOD_VECTOR: "semantic_search",
               pb.SEARCH_METHOD_FULL_TEXT: "full_text_search", pb.SEARCH_METHOD_HYBRID: "hybrid_search"}


def _int(value, field: str) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit() \
            or int(value) > 1_000_000:
        raise BadRequest(f"{field} must be a whole number of tokens", field=field)
    return int(value)


def _text(value, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 100:
        raise BadRequest(f"{field} must be text of at most 100 characters", field=field)
    return value


def _object(value, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{field} must be an object", field=field)
    return value


def process_rule(rule: dict | None) -> pb.ProcessRule | None:
    """Dify's process_rule -> rag's ProcessRule (None = the dataset's). The shape is checked here
    (a 400 naming the field); the values (mode, sizes, overlaps) by rag."""
    if not rule:
        return None
    rule = _object(rule, "process_rule")
    rules = _object(rule.get("rules"), "process_rule.rules")
    pre_rules = rules.get("pre_processing_rules") or []
    if not isinstance(pre_rules, list) or not all(isinstance(r, dict) for r in pre_rules):
        raise BadRequest("process_rule.rules.pre_processing_rules must be a list of {id, enabled}",
                         field="process_rule.rules.pre_processing_rules")
    pre = {r.get("id"): bool(r.get("enabled")) for r in pre_rules}
    seg = _object(rules.get("segmentation"), "process_rule.rules.segmentation")
    sub = _object(rules.get("subchunk_segmentation"), "process_rule.rules.subchunk_segmentation")
    at, sub_at = "process_rule.rules.segmentation.", "process_rule.rules.subchunk_segmentation."
    separator, sub_separator = _text(seg.get("separator"), at + "separator"), _text(sub.get("separator"),
                                                                                   sub_at + "separator")
    return pb.ProcessRule(
        mode=_text(rule.get("mode"), "process_rule.mode") or "automatic",
        remove_extra_spaces=pre.get("remove_extra_spaces", True),
        remove_urls_emails=pre.get("remove_urls_emails", False),
        separators=[separator] if separator else [], max_tokens=_int(seg.get("max_tokens"), at + "max_tokens"),
        chunk_overlap=_int(seg.get("chunk_overlap"), at + "chunk_overlap"),
        parent_mode=_text(rules.get("parent_mode"), "process_rule.rules.parent_mode"),
        subchunk_separators=[sub_separator] if sub_separator else [],
        subchunk_max_tokens=_int(sub.get("max_tokens"), sub_at + "max_tokens"),
        subchunk_chunk_overlap=_int(sub.get("chunk_overlap"), sub_at + "chunk_overlap"))


def process_rule_body(r: pb.ProcessRule) -> dict:
    """rag's ProcessRule -> Dify's process_rule (a dataset's: what documents added without one use)."""
    return {"mode": r.mode or "automatic",
            "rules": {"pre_processing_rules": [{"id": "remove_extra_spaces", "enabled": r.remove_extra_spaces},
                                               {"id": "remove_urls_emails", "enabled": r.remove_urls_emails}],
                      "segmentation": {"separator": r.separators[0] if r.separators else "",
                                       "max_tokens": r.max_tokens, "chunk_overlap": r.chunk_overlap},
                      "parent_mode": r.parent_mode or "paragraph",
                      "subchunk_segmentation": {"separator": r.subchunk_separators[0] if r.subchunk_separators else "",
                                                "max_tokens": r.subchunk_max_tokens,
                                                "chunk_overlap": r.subchunk_chunk_overlap}}}


def search_method(model: dict | None) -> int:
    """Dify's retrieval_model.search_method -> rag's (absent: UNSPECIFIED, the dataset's)."""
    name = (model or {}).get("search_method") if isinstance(model, dict) else None
    if name in (None, ""):
        return pb.SEARCH_METHOD_UNSPECIFIED
    if name not in SEARCH:
        raise BadRequest(f"search_method must be one of {sorted(SEARCH)}", field="retrieval_model.search_method")
    return SEARCH[name]


def dataset_body(d: pb.Dataset) -> dict:
    return {"id": d.id, "name": d.name, "description": d.description or None, "provider": "vendor",
            "permission": "only_me", "data_source_type": "upload_file" if d.document_count else None,
            "indexing_technique": d.indexing_technique or "high_quality", "app_count": 0,
            "document_count": d.document_count, "word_count": d.word_count, "created_by": None,
            "created_at": d.created_at, "updated_by": None, "updated_at": d.updated_at,
            "embedding_model": d.embedding_model, "embedding_model_provider": d.embedding_model_provider or "loom",
            "embedding_available": True, "tags": [],
            "doc_form": "hierarchical_model" if d.process_rule.mode == "hierarchical" else "text_model",
            "process_rule": process_rule_body(d.process_rule),
            "retrieval_model_dict": {"search_method": SEARCH_NAME.get(d.search_method, "semantic_search"),
                                     "reranking_enable": False, "top_k": 4, "score_threshold_enabled": False,
                                     "score_threshold": None}}


def document_body(d: pb.Document) -> dict:
    return {"id": d.id, "position": d.position, "data_source_type": d.data_source_type or "upload_file",
            "data_source_info": {"upload_file_id": d.id} if d.data_source_type == "upload_file" else None,
            "dataset_process_rule_id": None, "name": d.name, "created_from": "api", "created_by": None,
            "created_at": d.created_at, "tokens": d.tokens, "indexing_status": d.indexing_status,
            "error": d.error or None,
            "enabled": d.enabled, "disabled_at": None, "disabled_by": None, "archived": d.archived,
            "display_status": _display_status(d),
            "word_count": d.word_count, "hit_count": 0, "doc_form": d.doc_form or "text_model",
            "doc_metadata": json.loads(d.metadata_json) if d.metadata_json else None}


def _display_status(d: pb.Document) -> str:
    if d.archived:
        return "archived"
    if d.indexing_status != "completed":
        return d.indexing_status
    return "available" if d.enabled else "disabled"


def metadata_filters(model: dict) -> tuple[list[pb.MetadataFilter], str]:
    """Dify's retrieval_model.metadata_filtering_conditions -> rag's filters and their logic
    (a 400 naming the field for a bad condition)."""
    raw = model.get("metadata_filtering_conditions")
    if raw is None:
        return [], "and"
    at = "retrieval_model.metadata_filtering_conditions"
    try:
        conditions = MetadataFilteringConditions.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise BadRequest(f"{err['msg']}", field=f"{at}.{where}" if where else at) from None
    return ([pb.MetadataFilter(key=k, op=op, value_json=json.dumps(v)) for k, op, v in conditions.filters()],
            conditions.logical_operator)


def indexing_status_body(d: pb.Document) -> dict:
    return {"id": d.id, "indexing_status": d.indexing_status,
            "processing_started_at": d.processing_started_at or None, "parsing_completed_at": None,
            "cleaning_completed_at": None, "splitting_completed_at": None,
            "completed_at": d.completed_at or None, "paused_at": None, "error": d.error or None, "stopped_at": None,
            "completed_segments": d.completed_segments, "total_segments": d.total_segments}


def segment_body(s: pb.Segment) -> dict:
    return {"id": s.id, "position": s.position, "document_id": s.document_id, "content": s.content, "answer": None,
            "word_count": s.word_count, "tokens": s.tokens, "keywords": [], "index_node_id": s.id,
            "index_node_hash": None, "hit_count": 0, "enabled": s.enabled, "disabled_at": None, "disabled_by": None,
            "status": s.status, "created_by": None, "created_at": s.created_at, "indexing_at": s.created_at,
            "completed_at": s.updated_at if s.status == "completed" else None, "error": None, "stopped_at": None}


def child_chunk_body(s: pb.Segment, segment_id: str) -> dict:
    """A child of a parent-child document's chunk, in Dify's child_chunk shape."""
    return {"id": s.id, "segment_id": segment_id, "content": s.content, "position": s.position,
            "word_count": s.word_count, "type": "automatic", "created_at": s.created_at, "updated_at": s.updated_at}


def page_body(res, body) -> dict:
    return {"data": [body(x) for x in res.data], "has_more": res.has_more, "limit": res.limit, "total": res.total,
            "page": res.page}
