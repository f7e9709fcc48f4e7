"""Search queries: nearest vectors (HNSW, cosine) and full-text (tsvector, GIN), each always
restricted to one tenant and a set of datasets, enabled segments of enabled documents, and the
caller's metadata filters.

Vector search orders by `embedding::vector(N) <=> q`, the expression the partial per-dimension
HNSW index is built on. Filters are applied during the index scan; with pgvector's iterative
scans (`hnsw.iterative_scan = relaxed_order`, set per transaction) the scan goes on past
`ef_search` candidates until `limit` rows pass the filters, and the outer query restores exact
order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg
import numpy as np

from loom_rag.domain.errors import InvalidArgument
from loom_rag.domain.models import Hit, MetadataFilter
from loom_rag.store.rows import loads

_COLUMNS = "s.id, s.document_id, s.dataset_id, s.content, s.position, s.metadata, s.parent_content"


def filter_sql(filters: Sequence[MetadataFilter], args: list[Any]) -> str:
    """SQL conditions for metadata filters, parameters appended to `args`."""
    clauses = []
    for f in filters:
        args.append(f.key)
        k = f"${len(args)}::text"
        args.append(json.dumps(f.value))
        v = f"${len(args)}::jsonb"
        if f.op == "eq":
            clauses.append(f"s.metadata @> jsonb_build_object({k}, {v})")
        elif f.op == "ne":
            clauses.append(f"NOT (s.metadata @> jsonb_build_object({k}, {v}))")
        elif f.op == "in":
            if not isinstance(f.value, list):
                raise InvalidArgument("filters.value_json", f"'in' needs a JSON array for {f.key!r}")
            clauses.append(f"(s.metadata -> {k}) <@ {v}")
        elif f.op == "contains":
            # An array holding the value, or a string holding it as a substring.
            sub = f"strpos(s.metadata ->> {k}, {v} #>> '{{}}') > 0" if isinstance(f.value, str) else "false"
            clauses.append(f"((s.metadata -> {k}) @> {v} OR {sub})")
        elif f.op in ("gt", "lt"):
            op = ">" if f.op == "gt" else "<"
            clauses.append(f"(jsonb_typeof(s.metadata -> {k}) = jsonb_typeof({v}) AND (s.metadata -> {k}) {op} {v})")
        else:
            raise InvalidArgument("filters.op", f"unknown operator {f.op!r}; use one of {MetadataFilter.OPS}")
    return "".join(f" AND {c}" for c in clauses)


def _hits(found: list[asyncpg.Record]) -> list[Hit]:
    return [Hit(segment_id=str(r["id"]), document_id=str(r["document_id"]), dataset_id=str(r["dataset_id"]),
                content=r["content"], position=r["position"], document_name=r["document_name"],
                metadata=loads(r["metadata"]), parent_content=r["parent_content"], score=float(r["score"]))
            for r in found]


async def vector(conn: asyncpg.Connection, *, tenant_id: str, dataset_ids: list[str], dim: int,
                 query_vector: Sequence[float], limit: int, filters: Sequence[MetadataFilter] = ()) -> list[Hit]:
    dim = int(dim)
    args: list[Any] = [np.asarray(query_vector, dtype=np.float32), tenant_id, dataset_ids, limit]
    where = filter_sql(filters, args)
    sql = f"""
        WITH hits AS MATERIALIZED (
            SELECT {_COLUMNS}, s.embedding::vector({dim}) <=> $1::vector({dim}) AS distance
            FROM segments s
            WHERE s.tenant_id = $2 AND s.dataset_id = ANY($3::uuid[]) AND s.embedding_dim = {dim}
              AND s.enabled AND s.document_enabled{where}
            ORDER BY s.embedding::vector({dim}) <=> $1::vector({dim})
            LIMIT $4)
        SELECT hits.*, 1 - hits.distance AS score, d.name AS document_name
        FROM hits JOIN documents d ON d.id = hits.document_id AND d.tenant_id = $2
        ORDER BY hits.distance"""
    return _hits(await conn.fetch(sql, *args))


async def full_text(conn: asyncpg.Connection, *, tenant_id: str, dataset_ids: list[str], text_search_config: str,
                    query: str, limit: int, filters: Sequence[MetadataFilter] = ()) -> list[Hit]:
    # Terms are OR-ed (any of them matches) and ts_rank_cd ranks rows holding more of them, and
    # closer together, higher; normalisation 32 maps the rank into 0..1.
    args: list[Any] = [query, tenant_id, dataset_ids, limit, text_search_config]
    where = filter_sql(filters, args)
    sql = f"""
        WITH q AS (SELECT replace(plainto_tsquery($5::regconfig, $1)::text, ' & ', ' | ')::tsquery AS query),
        hits AS MATERIALIZED (
            SELECT {_COLUMNS}, ts_rank_cd(s.tsv, q.query, 32) AS score
            FROM segments s, q
            WHERE s.tenant_id = $2 AND s.dataset_id = ANY($3::uuid[]) AND s.tsv @@ q.query
              AND s.enabled AND s.document_enabled{where}
            ORDER BY score DESC, s.id
            LIMIT $4)
        SELECT hits.*, d.name AS document_name
        FROM hits JOIN documents d ON d.id = hits.document_id AND d.tenant_id = $2
        ORDER BY hits.score DESC, hits.id"""
    if not query.strip():
        return []
    return _hits(await conn.fetch(sql, *args))
