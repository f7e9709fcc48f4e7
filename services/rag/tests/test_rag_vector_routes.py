"""A small tenant in a big table, against the REAL Postgres+pgvector: each dataset's vector
search takes its route (exact scan, its own partial HNSW index, the shared index), results are
right and stay within the tenant, row-level security still applies to the route's SQL, and the
index keeper's concurrent build never blocks ingestion.

Vectors are clustered random ones (like sentence embeddings, unlike uniform noise); the truth is
numpy's exact top-k. Thresholds are lowered so that a few thousand rows exercise every route."""

from __future__ import annotations

import asyncio
import json
import uuid

import numpy as np
import pytest

from loom_common.events import DocumentIngestRequested, DocumentStatus
from loom_common.testing import migrated_pool
from loom_rag import metrics
from loom_rag.domain.errors import NotFound
from loom_rag.domain.models import RetrievalQuery, SearchMethod
from loom_rag.domain.vector_routes import DatasetScope, IndexPolicy, Route
from loom_rag.ingest.pipeline import Ingestor
from loom_rag.ingest.tokenizer import WordPieceTokenizer
from loom_rag.management import Management, Source
from loom_rag.retrieval.index_keeper import IndexKeeper
from loom_rag.retrieval.rerank import LexicalOverlapReranker
from loom_rag.retrieval.service import Retriever
from loom_rag.storage import LocalFileStore
from loom_rag.store import search, vector_indexes
from loom_rag.store.tenancy import TenantDb

DIM, K = 384, 10
POLICY = IndexPolicy(exact_max_rows=300, own_index_min_rows=1_000, own_index_max_share=0.5)


# ---- the routing rule alone ------------------------------------------------------------------

def test_each_dataset_takes_the_route_its_size_calls_for() -> None:
    p = IndexPolicy(exact_max_rows=100, own_index_min_rows=1_000, own_index_max_share=0.5)
    scopes = [DatasetScope("small", 40, own_index=False), DatasetScope("mid-indexed", 5_000, own_index=True),
              DatasetScope("mid-building", 5_000, own_index=False), DatasetScope("small-indexed", 90, own_index=True)]
    assert p.routes(scopes) == {Route.EXACT: ["small", "small-indexed"], Route.OWN_INDEX: ["mid-indexed"],
                                Route.SHARED: ["mid-building"]}
    assert p.wants_own_index(5_000, 100_000) and not p.wants_own_index(999, 100_000)
    assert not p.wants_own_index(60_000, 100_000)  # most of the table: the shared index serves it
    assert p.keeps_own_index(600) and not p.keeps_own_index(400)  # hysteresis below the threshold
    old = IndexPolicy.shared_only()
    assert old.all_shared and old.routes(scopes) == {Route.SHARED: [s.dataset_id for s in scopes]}


# ---- against Postgres --------------------------------------------------------------------------

class Queue:
    def __init__(self):
        self.items: list[DocumentIngestRequested] = []

    async def enqueue(self, **kw) -> None:
        self.items.append(DocumentIngestRequested(**kw))


class Progress:
    async def report(self, p) -> None:
        pass


@pytest.fixture
async def pool(database_url):
    async with migrated_pool(database_url, "rag", "loom_rag.migrations", max_size=6) as pool:
        yield pool


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def clustered(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    x = centres[rng.integers(0, len(centres), size=n)] + rng.normal(scale=0.9 / np.sqrt(DIM), size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


async def seed(pool, tenant_id: str, vectors: np.ndarray) -> str:
    """A dataset holding `vectors` as segments 0..n-1 (position = row), with the document's
    counts as ingestion leaves them; one COPY instead of the pipeline, for speed."""
    ds, doc = str(uuid.uuid4()), str(uuid.uuid4())
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO datasets (id, tenant_id, name, embedding_model, embedding_dim, process_rule) "
                           "VALUES ($1, $2, $3, 'all-minilm:l6-v2', 384, '{}'::jsonb)", uuid.UUID(ds), tenant_id,
                           f"ds-{ds[:8]}")
        await conn.execute("INSERT INTO documents (id, tenant_id, dataset_id, name, position, data_source_type, "
                           "file_key, process_rule, status, segments_total, segments_done) VALUES ($1, $2, $3, "
                           "'seed.txt', 1, 'text', 'none', '{}'::jsonb, 'completed', $4, $4)",
                           uuid.UUID(doc), tenant_id, uuid.UUID(ds), len(vectors))
        await conn.execute("CREATE TEMP TABLE staging (position int, embedding vector(384)) ON COMMIT DROP")
        await conn.copy_records_to_table("staging", records=[(i, v) for i, v in enumerate(vectors)])
        await conn.execute(
            """INSERT INTO segments (id, tenant_id, dataset_id, document_id, revision, position, content,
                                     embedding_model, embedding_dim, embedding, tsv)
               SELECT gen_random_uuid(), $1, $2, $3, 1, position, 'chunk ' || position, 'all-minilm:l6-v2', 384,
                      embedding::vector, to_tsvector('english', 'chunk')
               FROM staging""", tenant_id, uuid.UUID(ds), uuid.UUID(doc))
    return ds


def truth(vectors: np.ndarray, q: np.ndarray) -> set[int]:
    return set(np.argsort(-(vectors @ q))[:K].tolist())


def routed(route: Route) -> float:
    return metrics.VECTOR_ROUTES.labels(route=route.value)._value.get()


async def search_positions(retriever: Retriever, tenant_id: str, datasets: list[str], q: np.ndarray):
    hits = await retriever.retrieve(RetrievalQuery(tenant_id, datasets, "q", method=SearchMethod.VECTOR, top_k=K,
                                                   query_vector=q.tolist()))
    return hits


@pytest.fixture
def data():
    rng = np.random.default_rng(23)
    centres = rng.normal(size=(40, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return rng, centres


pytestmark = pytest.mark.integration


async def test_a_small_tenant_among_many_rows_gets_the_exact_nearest(pool, data) -> None:
    rng, centres = data
    big, small = tenant(), tenant()
    big_ds = await seed(pool, big, clustered(rng, 2_000, centres))
    mine = clustered(rng, 120, centres)
    small_ds = await seed(pool, small, mine)
    retriever = Retriever(await TenantDb.open(pool), None, LexicalOverlapReranker(), policy=POLICY)
    before = routed(Route.EXACT)
    for q in clustered(rng, 15, centres):
        hits = await search_positions(retriever, small, [small_ds], q)
        assert {h.dataset_id for h in hits} == {small_ds}
        assert {h.position for h in hits} == truth(mine, q)  # exact: all of the true top k
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert routed(Route.EXACT) - before == 15
    # The big tenant's dataset stays on the shared index, and neither tenant reaches the other's.
    before = routed(Route.SHARED)
    assert {h.dataset_id for h in await search_positions(retriever, big, [big_ds], mine[0])} == {big_ds}
    assert routed(Route.SHARED) - before == 1
    for who, other in ((big, small_ds), (small, big_ds)):
        with pytest.raises(NotFound):
            await search_positions(retriever, who, [other], mine[0])


@pytest.mark.slow
async def test_a_dataset_past_the_threshold_gets_its_own_index_built_concurrently_and_used(pool, data) -> None:
    rng, centres = data
    a, b = tenant(), tenant()
    await seed(pool, b, clustered(rng, 2_500, centres))
    mid = clustered(rng, 1_200, centres)
    mid_ds = await seed(pool, a, mid)
    few = clustered(rng, 50, centres)
    few_ds = await seed(pool, a, few)
    tdb = await TenantDb.open(pool)
    retriever = Retriever(tdb, None, LexicalOverlapReranker(), policy=POLICY)
    async with pool.acquire() as conn:
        assert [s.own_index for s in await vector_indexes.scopes(conn, a, [mid_ds], DIM)] == [False]

    done = await IndexKeeper(pool, POLICY).reconcile()
    name = vector_indexes.index_name(DIM, mid_ds)
    assert name in done.built and not done.failed
    async with pool.acquire() as conn:
        assert [(s.rows, s.own_index) for s in await vector_indexes.scopes(conn, a, [mid_ds, few_ds], DIM)] == \
            [(1_200, True), (50, False)]
        # The planner takes the dataset's own index for the route's query, run as the route runs
        # it (search.vector: enable_sort off, so a fresh table's stale statistics cannot make a
        # sort look cheaper; custom plan: the dataset id is a constant it proves the partial
        # predicate from) and not the shared index.
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_sort = off")
            plan = await conn.fetchval(
                "EXPLAIN (FORMAT JSON) SELECT id FROM segments s WHERE s.tenant_id = $1 AND s.dataset_id = $2::uuid "
                "AND s.embedding_dim = 384 AND s.enabled AND s.document_enabled "
                "ORDER BY s.embedding::vector(384) <=> $3::vector(384) LIMIT 10", a, mid_ds, mid[0])
        assert name in plan

    before = (routed(Route.OWN_INDEX), routed(Route.EXACT))
    recalls = []
    union = np.concatenate([mid, few])
    for q in clustered(rng, 15, centres):
        # Both datasets in one query: one by its own index, one exactly, merged by score.
        hits = await search_positions(retriever, a, [mid_ds, few_ds], q)
        assert {h.dataset_id for h in hits} <= {mid_ds, few_ds} and len(hits) == K
        got = {h.position + (len(mid) if h.dataset_id == few_ds else 0) for h in hits}
        recalls.append(len(got & truth(union, q)) / K)
    assert (routed(Route.OWN_INDEX) - before[0], routed(Route.EXACT) - before[1]) == (15, 15)
    assert np.mean(recalls) >= 0.9  # HNSW is approximate; on 1,200 rows at ef_search 64 it is ~1.0

    # A dataset deleted: the next pass drops its index.
    async with tdb.transaction(a) as conn:
        await conn.execute("DELETE FROM datasets WHERE id = $1::uuid", mid_ds)
    assert name in (await IndexKeeper(pool, POLICY).reconcile()).dropped
    async with pool.acquire() as conn:
        assert name not in {ix.name for ix in await vector_indexes.existing(conn)}


async def test_row_level_security_still_walls_off_each_route(pool, data) -> None:
    """Vector search runs as the tenant role: a route's SQL asked for another tenant's rows (a
    bug in a tenant filter) still gets none of them."""
    rng, centres = data
    a, b = tenant(), tenant()
    b_ds = await seed(pool, b, clustered(rng, 1_100, centres))
    await IndexKeeper(pool, POLICY).reconcile()
    tdb = await TenantDb.open(pool)
    assert tdb.rls_role == "loom_rag_tenant"
    q = clustered(rng, 1, centres)[0]
    for route in Route:
        async with tdb.transaction(b) as conn:  # the owner sees its rows on every route
            assert len(await search.vector(conn, tenant_id=b, dataset_ids=[b_ds], dim=DIM, query_vector=q,
                                           limit=K, route=route)) == K
        async with tdb.transaction(a) as conn:  # tenant a's transaction, asking for b's rows
            assert await search.vector(conn, tenant_id=b, dataset_ids=[b_ds], dim=DIM, query_vector=q,
                                        limit=K, route=route) == []
            assert await vector_indexes.scopes(conn, b, [b_ds], DIM) == []


@pytest.mark.slow
async def test_a_concurrent_index_build_never_blocks_ingestion(pool, data, tmp_path, builders) -> None:
    """The build waits for a writer's open transaction (as CREATE INDEX CONCURRENTLY does);
    meanwhile a whole document is ingested and searched. A plain CREATE INDEX would queue its
    share lock behind that writer and every new write behind it."""
    rng, centres = data
    t = tenant()
    big_ds = await seed(pool, t, clustered(rng, 1_100, centres))
    await seed(pool, tenant(), clustered(rng, 2_000, centres))  # keeps big_ds a minor share
    embedder = builders.embedder()
    tdb = await TenantDb.open(pool)
    files = LocalFileStore(tmp_path / "files")
    queue = Queue()
    m = Management(db=tdb, files=files, queue=queue, embedder=embedder, catalog=embedder,
                   tokenizer=WordPieceTokenizer(), default_embedding_model="all-minilm:l6-v2")
    ingestor = Ingestor(db=tdb, files=files, embedder=embedder, tokenizer=WordPieceTokenizer(),
                        progress=Progress(), batch_size=4)
    retriever = Retriever(tdb, embedder, LexicalOverlapReranker(), policy=POLICY)
    small = await m.create_dataset(t, name="notes")
    name = vector_indexes.index_name(DIM, big_ds)

    writer = await pool.acquire()
    tx = writer.transaction()
    await tx.start()
    await writer.execute("UPDATE segments SET enabled = enabled WHERE dataset_id = $1::uuid AND position = 0", big_ds)
    build = asyncio.create_task(IndexKeeper(pool, POLICY).reconcile())
    try:
        async with asyncio.timeout(120):  # a hang guard only
            for _ in range(100_000):  # until the build is under way (and waiting for the writer)
                if await pool.fetchval("SELECT EXISTS (SELECT 1 FROM pg_stat_progress_create_index "
                                       "WHERE relid = 'segments'::regclass)"):
                    break
                await asyncio.sleep(0.05)
            doc = await m.create_document(t, small.id, name="tides.txt",
                                          source=Source(text="Spring tides follow the full moon.\n\n" * 20))
            await ingestor.ingest(queue.items.pop())
            assert (await m.get_document(t, small.id, doc.id)).status == DocumentStatus.COMPLETED
            # Searches go on too: the dataset being indexed is served by the shared index.
            hits = await search_positions(retriever, t, [big_ds], clustered(rng, 1, centres)[0])
            assert len(hits) == K
            assert not build.done()  # still waiting for the writer: ingestion did not wait for it
            async with pool.acquire() as conn:
                assert [s.own_index for s in await vector_indexes.scopes(conn, t, [big_ds], DIM)] == [False]
    finally:
        await tx.commit()
        await pool.release(writer)
    done = await asyncio.wait_for(build, 120)
    assert name in done.built
    async with pool.acquire() as conn:
        assert [s.own_index for s in await vector_indexes.scopes(conn, t, [big_ds], DIM)] == [True]


@pytest.mark.slow
async def test_one_keeper_at_a_time_and_failed_builds_are_dropped_and_rebuilt(pool, data) -> None:
    rng, centres = data
    t = tenant()
    ds = await seed(pool, t, clustered(rng, 1_050, centres))
    await seed(pool, tenant(), clustered(rng, 1_500, centres))
    name = vector_indexes.index_name(DIM, ds)
    async with vector_indexes.keeper_lock(pool) as held:
        assert held is not None
        assert not (await IndexKeeper(pool, POLICY).reconcile()).locked  # another replica's pass: skipped
    # An interrupted concurrent build leaves an INVALID index: searches ignore it, the keeper
    # drops it and builds it again.
    done = await IndexKeeper(pool, POLICY).reconcile()
    assert name in done.built
    async with pool.acquire() as conn:
        await conn.execute(f"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{name}'::regclass")
        assert [s.own_index for s in await vector_indexes.scopes(conn, t, [ds], DIM)] == [False]
    done = await IndexKeeper(pool, POLICY).reconcile()
    assert name in done.dropped and name in done.built
    async with pool.acquire() as conn:
        assert [s.own_index for s in await vector_indexes.scopes(conn, t, [ds], DIM)] == [True]
    # Tidy: the session's database is shared by the rag tests.
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM datasets WHERE id = $1::uuid", ds)
    await IndexKeeper(pool, POLICY).reconcile()


async def test_bad_names_never_reach_ddl() -> None:
    with pytest.raises(ValueError):
        vector_indexes.index_name(384, "x'; DROP TABLE segments; --")
    with pytest.raises(ValueError):
        await vector_indexes.drop(None, "segments; DROP TABLE segments")
    assert json.dumps(vector_indexes.index_name(384, str(uuid.UUID(int=1)))).count("_ds_") == 1


def test_the_service_runs_the_index_keeper_in_the_background() -> None:
    """The keeper is wired into the rag process (and only there where it is not turned off)."""
    from loom_rag.app import build
    from loom_rag.settings import RagSettings

    assert [name for name, _ in build(RagSettings())._background] == ["index-keeper"]
    assert [name for name, _ in build(RagSettings(index_keeper_poll_s=0))._background] == []
