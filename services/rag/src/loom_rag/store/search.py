"""Search queries: nearest vectors (HNSW, cosine) and full-text (tsvector, GIN), each always
restricted to one tenant and a set of datasets, enabled segments of enabled documents, and the
caller's metadata filters.

Vector search takes one of three routes (domain/vector_routes.py):
    SHARED     orders by `embedding::vector(N) <=> q`, the expression the per-dimension HNSW
               index is built on. Filters are applied during the index scan; with pgvector's
               iterative scans (`hnsw.iterative_scan = relaxed_order`, set per transaction) the
               scan goes on past `ef_search` candidates until `limit` rows pass the filters, and
               the outer query restores exact order.
    OWN_INDEX  the same, for one dataset, whose id is then a plain `=` the planner proves the
               dataset's partial index predicate from (plans are custom: the value is known).
               Sorting is disabled for that one statement: the planner prices the b-tree plus
               an exact sort of a few thousand rows below the HNSW walk, which measured slower
               (docs/rag.md), and the index is there to be walked.
    EXACT      orders by the distance plus 0, an expression no index provides, so the planner
               reads the dataset's rows through the (tenant_id, dataset_id) b-tree and sorts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg
import numpy as np

from loom_rag.domain.errors import InvalidArgument
from loom_rag.domain.models import Hit, MetadataFilter
from loom_rag.domain.vector_routes import Route
from loom_rag.store.rows import loads

_COLUMNS = "s.id, s.document_id, s.dataset_id, s.content, s.position, s.metadata, s.parent_content"


def filter_sql(filters: Sequence[MetadataFilter], args: list[Any], logic: str = "and") -> str:
    """SQL conditions for metadata filters, parameters appended to `args`; all of them must hold
    (`logic` "and") or any one (`logic` "or").

    eq / ne          the key holds the value (JSON equality) / does not (or is absent)
    in / not_in      the key's value is one of a JSON array / is not (or is absent)
    contains         an array holding the value, or a text holding it; not_contains: neither
    starts_with / ends_with   text prefix / suffix
    empty / not_empty         absent, null or "" / anything else
    gt lt ge le      compared as JSON values of the same type (numbers with numbers, text with text)
    """
    clauses = []
    for f in filters:
        args.append(f.key)
        k = f"${len(args)}::text"
        text = f"(s.metadata ->> {k})"
        v = ""
        if f.op not in ("empty", "not_empty"):  # those take no value (an unused parameter is an error)
            args.append(json.dumps(f.value))
            v = f"${len(args)}::jsonb"
        if f.op in ("in", "not_in") and not isinstance(f.value, list):
            raise InvalidArgument("filters.value_json", f"'{f.op}' needs a JSON array for {f.key!r}")
        if f.op in ("starts_with", "ends_with") and not isinstance(f.value, str):
            raise InvalidArgument("filters.value_json", f"'{f.op}' needs a JSON string for {f.key!r}")
        if f.op == "eq":
            clauses.append(f"s.metadata @> jsonb_build_object({k}, {v})")
        elif f.op == "ne":
            clauses.append(f"NOT (s.metadata @> jsonb_build_object({k}, {v}))")
        elif f.op == "in":
            clauses.append(f"coalesce((s.metadata -> {k}) <@ {v}, false)")
        elif f.op == "not_in":
            clauses.append(f"NOT coalesce((s.metadata -> {k}) <@ {v}, false)")
        elif f.op in ("contains", "not_contains"):
            # An array holding the value, or a string holding it as a substring.
            sub = f"strpos({text}, {v} #>> '{{}}') > 0" if isinstance(f.value, str) else "false"
            held = f"coalesce((s.metadata -> {k}) @> {v} OR {sub}, false)"
            clauses.append(held if f.op == "contains" else f"NOT {held}")
        elif f.op == "starts_with":
            clauses.append(f"coalesce(left({text}, length({v} #>> '{{}}')) = {v} #>> '{{}}', false)")
        elif f.op == "ends_with":
            clauses.append(f"coalesce(right({text}, length({v} #>> '{{}}')) = {v} #>> '{{}}', false)")
        elif f.op in ("empty", "not_empty"):
            empty = f"coalesce({text}, '') = ''"
            clauses.append(empty if f.op == "empty" else f"NOT ({empty})")
        elif f.op in ("gt", "lt", "ge", "le"):
            op = {"gt": ">", "lt": "<", "ge": ">=", "le": "<="}[f.op]
            clauses.append(f"(jsonb_typeof(s.metadata -> {k}) = jsonb_typeof({v}) AND (s.metadata -> {k}) {op} {v})")
        else:
            raise InvalidArgument("filters.op", f"unknown operator {f.op!r}; use one of {MetadataFilter.OPS}")
    if not clauses:
        return ""
    if logic not in ("and", "or"):
        raise InvalidArgument("filter_logic", "must be 'and' or 'or'")
    return f" AND ({f' {logic.upper()} '.join(clauses)})"


def _hits(found: list[asyncpg.Record]) -> list[Hit]:
    return [Hit(segment_id=str(r["id"]), document_id=str(r["document_id"]), dataset_id=str(r["dataset_id"]),
                content=r["content"], position=r["position"], document_name=r["document_name"],
                metadata=loads(r["metadata"]), parent_content=r["parent_content"], score=float(r["score"]))
            for r in found]


async def vector(conn: asyncpg.Connection, *, tenant_id: str, dataset_ids: list[str], dim: int,
                 query_vector: Sequence[float], limit: int, filters: Sequence[MetadataFilter] = (),
                 filter_logic: str = "and", route: Route = Route.SHARED) -> list[Hit]:
    dim = int(dim)
    if route == Route.OWN_INDEX:
        if len(dataset_ids) != 1:
            raise ValueError("an own-index search names exactly one dataset")
        datasets: Any = dataset_ids[0]
        in_datasets = "s.dataset_id = $3::uuid"
    else:
        datasets, in_datasets = dataset_ids, "s.dataset_id = ANY($3::uuid[])"
    distance = f"s.embedding::vector({dim}) <=> $1::vector({dim})"
    order = f"({distance}) + 0" if route == Route.EXACT else distance
    args: list[Any] = [np.asarray(query_vector, dtype=np.float32), tenant_id, datasets, limit]
    where = filter_sql(filters, args, filter_logic)
    sql = f"""
        WITH hits AS MATERIALIZED (
            SELECT {_COLUMNS}, {distance} AS distance
            FROM segments s
            WHERE s.tenant_id = $2 AND {in_datasets} AND s.embedding_dim = {dim}
              AND s.enabled AND s.document_enabled{where}
            ORDER BY {order}
            LIMIT $4)
        SELECT hits.*, 1 - hits.distance AS score, d.name AS document_name
        FROM hits JOIN documents d ON d.id = hits.document_id AND d.tenant_id = $2
        ORDER BY hits.distance"""
    if route != Route.OWN_INDEX:
        return _hits(await conn.fetch(sql, *args))
    await conn.execute("SET LOCAL enable_sort = off")
    try:
        return _hits(await conn.fetch(sql, *args))
    finally:
        await conn.execute("SET LOCAL enable_sort = on")


async def full_text(conn: asyncpg.Connection, *, tenant_id: str, dataset_ids: list[str], text_search_config: str,
                    query: str, limit: int, filters: Sequence[MetadataFilter] = (),
                    filter_logic: str = "and") -> list[Hit]:
    # Terms are OR-ed (any of them matches) and ts_rank_cd ranks rows holding more of them, and
    # closer together, higher; normalisation 32 maps the rank into 0..1.
    args: list[Any] = [query, tenant_id, dataset_ids, limit, text_search_config]
    where = filter_sql(filters, args, filter_logic)
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
