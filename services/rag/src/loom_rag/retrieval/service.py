"""`Retriever.retrieve`: the best chunks of a tenant's datasets for a query.

    datasets (tenant-checked) -> grouped by embedding model, dimension and text search config
      -> per group, in one transaction: vector hits and/or full-text hits; vector hits of each
         dataset by its route (exact, its own index, the shared index: domain/vector_routes.py)
      -> hybrid: weighted reciprocal rank fusion -> groups merged by score
      -> optional rerank -> score threshold -> top_k

A dataset's vectors were made by one model; a query vector from another model, or of another
dimension, would be compared in a different space, so it is refused (EmbeddingMismatch).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from loom_common.read_replica import Reads
from loom_rag import metrics
from loom_rag.domain import embedding_space
from loom_rag.domain.errors import EmbeddingMismatch, InvalidArgument, NotFound
from loom_rag.domain.models import Dataset, Hit, RetrievalQuery, SearchMethod
from loom_rag.domain.ports import Embedder
from loom_rag.domain.validation import uuid_
from loom_rag.domain.vector_routes import DatasetScope, IndexPolicy, Route
from loom_rag.retrieval.fusion import reciprocal_rank_fusion
from loom_rag.retrieval.rerank import Reranker
from loom_rag.store import datasets as datasets_store
from loom_rag.store import search, vector_indexes
from loom_rag.store.tenancy import TenantDb

MAX_TOP_K = 100


class Retriever:
    def __init__(self, db: TenantDb, embedder: Embedder, reranker: Reranker, *, ef_search: int = 64,
                 candidates_per_method: int = 40, reads: Reads | None = None, policy: IndexPolicy | None = None):
        self.db, self.embedder, self.reranker = db, embedder, reranker
        self.policy = policy or IndexPolicy()
        # Searches read the replica while it keeps up (loom_common.read_replica); without one,
        # the primary. Documents become searchable asynchronously anyway (ingestion is a queue).
        self.reads = reads or Reads(db.pool)
        self.ef_search, self.candidates = ef_search, candidates_per_method

    async def retrieve(self, q: RetrievalQuery) -> list[Hit]:
        started = time.perf_counter()
        _validate(q)
        ids = [uuid_("dataset_ids", d) for d in dict.fromkeys(q.dataset_ids)]
        db = TenantDb(self.reads.pool(q.tenant_id), rls_role=self.db.rls_role)
        try:
            async with db.pool.acquire() as conn:  # one round trip; filtered on tenant_id
                found, scopes = await self._lookup(conn, q.tenant_id, ids)
        except NotFound:
            if db.pool is self.db.pool:
                raise
            # A dataset the replica lacks may be one created a moment ago (through another rag
            # replica): the primary decides, and the search follows it there.
            db = self.db
            async with db.pool.acquire() as conn:
                found, scopes = await self._lookup(conn, q.tenant_id, ids)
        method = q.method or found[0].search_method
        groups: dict[tuple[str, int, str], list[Dataset]] = defaultdict(list)
        for ds in found:
            groups[(ds.embedding_model, ds.embedding_dim, ds.text_search_config)].append(ds)
        want = q.top_k * 3 if q.rerank else q.top_k
        hits: list[Hit] = []
        for (model, dim, ts_config), members in groups.items():
            vector = await self._query_vector(q, model, dim) if method != SearchMethod.FULL_TEXT else None
            hits.extend(await self._search(db, q, method, [d.id for d in members], dim, ts_config, vector, want,
                                           [scopes[d.id] for d in members]))
        hits.sort(key=lambda h: (-h.score, h.segment_id))
        hits = await self.reranker.rerank(q.query, hits, want) if q.rerank else hits
        if q.score_threshold is not None:
            hits = [h for h in hits if h.score >= q.score_threshold]
        metrics.RETRIEVAL_SECONDS.labels(method=method.value).observe(time.perf_counter() - started)
        return hits[: q.top_k]

    async def _lookup(self, conn, tenant_id: str, ids: list[str]) -> tuple[list[Dataset], dict[str, DatasetScope]]:
        """The datasets, and what routing needs of them (row counts, own indexes) in the same query."""
        if self.policy.all_shared:
            found = await datasets_store.lookup_many(conn, tenant_id, ids)
            return found, {d.id: DatasetScope(d.id, 0, own_index=False) for d in found}
        return await vector_indexes.lookup(conn, tenant_id, ids)

    async def _query_vector(self, q: RetrievalQuery, model: str, dim: int) -> list[float]:
        if q.query_vector:
            if q.query_embedding_model and embedding_space.base_name(q.query_embedding_model) != \
                    embedding_space.base_name(model):
                raise EmbeddingMismatch(f"query embedded with {q.query_embedding_model!r}; the dataset uses {model!r}")
            if len(q.query_vector) != dim:
                raise EmbeddingMismatch(f"query vector has {len(q.query_vector)} dimensions; the dataset's "
                                        f"model {model!r} has {dim}")
            return list(q.query_vector)
        got = await self.embedder.embed(model, [q.query], tenant_id=q.tenant_id)
        return embedding_space.check(model, dim, got, 1)[0]

    async def _search(self, db: TenantDb, q: RetrievalQuery, method: SearchMethod, dataset_ids: list[str], dim: int,
                      ts_config: str, vector: list[float] | None, want: int, scopes: list[DatasetScope]
                      ) -> list[Hit]:
        n = max(want, self.candidates) if method == SearchMethod.HYBRID else want
        # Custom plans: a cached generic plan cannot see the query's tsquery or vector and picks
        # a sequential scan (measured: 190 ms instead of 9 ms for full text on 100k rows).
        settings = {"hnsw.ef_search": str(max(self.ef_search, n)), "hnsw.iterative_scan": "relaxed_order",
                    "plan_cache_mode": "force_custom_plan"}

        async def by_vector() -> list[Hit]:
            # As the tenant role (row-level security): every vector route's quals are leakproof
            # or ordering, so the policy costs no index (unlike full text's @@, below).
            async with db.transaction(q.tenant_id, **settings) as conn:
                return await self._by_routes(conn, q, scopes, dim, vector, n)

        async def by_text() -> list[Hit]:
            async with db.transaction(q.tenant_id, rls=False, **settings) as conn:
                return await search.full_text(conn, tenant_id=q.tenant_id, dataset_ids=dataset_ids,
                                              text_search_config=ts_config, query=q.query, limit=n,
                                              filters=q.filters, filter_logic=q.filter_logic)

        if method == SearchMethod.VECTOR:
            return await by_vector()
        if method == SearchMethod.FULL_TEXT:
            return await by_text()
        # Hybrid: the two searches run at once on two connections (latency = the slower one).
        if vector is None:
            return await by_text()
        vec_hits, text_hits = await asyncio.gather(by_vector(), by_text())
        return reciprocal_rank_fusion([vec_hits, text_hits], [q.vector_weight, q.keyword_weight])[:want]

    async def _by_routes(self, conn, q: RetrievalQuery, scopes: list[DatasetScope], dim: int, vector: list[float],
                         n: int) -> list[Hit]:
        """Nearest `n` over the datasets, each searched by its route, merged by score."""
        routes = self.policy.routes(scopes)
        hits: list[Hit] = []
        for route, ids in routes.items():
            # An own index serves one dataset: its predicate names that dataset alone.
            for group in ([d] for d in ids) if route == Route.OWN_INDEX else [ids]:
                metrics.VECTOR_ROUTES.labels(route=route.value).inc(len(group))
                hits.extend(await search.vector(conn, tenant_id=q.tenant_id, dataset_ids=group, dim=dim,
                                                query_vector=vector, limit=n, filters=q.filters,
                                                filter_logic=q.filter_logic, route=route))
        if len(routes) > 1 or Route.OWN_INDEX in routes:
            hits.sort(key=lambda h: (-h.score, h.segment_id))
        return hits[:n]


def _validate(q: RetrievalQuery) -> None:
    if not q.tenant_id:
        raise InvalidArgument("tenant_id", "is required")
    if not q.dataset_ids:
        raise InvalidArgument("dataset_ids", "name at least one dataset")
    if not 1 <= q.top_k <= MAX_TOP_K:
        raise InvalidArgument("top_k", f"must be between 1 and {MAX_TOP_K}")
    if not q.query.strip() and not q.query_vector:
        raise InvalidArgument("query", "is empty")
    if q.vector_weight < 0 or q.keyword_weight < 0:
        raise InvalidArgument("vector_weight", "weights must not be negative")
    if q.filter_logic not in ("and", "or"):
        raise InvalidArgument("filter_logic", "must be 'and' or 'or'")
    if q.score_threshold is not None and not 0 <= q.score_threshold <= 1:
        raise InvalidArgument("score_threshold", "must be between 0 and 1")
