"""A small tenant in a big table, through the rag service's own Retriever: the old routing (every
dataset on the shared HNSW index) against the per-dataset routes (exact scan, its own partial
HNSW index), in the same run, queries interleaved; plus ingestion throughput per backend.

Table: the rag schema's `segments` in its own bench database (loom_bench_rag_scale), 1,000,000
rows made from the corpus's real MiniLM vectors (bench/rag_corpus.py) plus noise of norm 0.2,
renormalised (as bench/rag_real.py's small-tenant table). Rows arrive in blocks of 64 of one
tenant's dataset, as ingestion writes them (a batch per transaction), blocks of ~200 tenants
interleaved; tenant 1 owns 0.5 % of the blocks (5,000 rows). `--block 1` draws every row's
tenant alone (rows scattered, as in bench/rag_real.py), in a database of its own. The shared index is built once
(minutes) and the table kept; tenant 1's own index is built by the keeper's code
(store.vector_indexes.build: CREATE INDEX CONCURRENTLY), timed, each run.

Designs, each Retrieve(tenant 1, its dataset, top_k 10, method vector, the query's vector):
    old_shared       IndexPolicy.shared_only() and no role switch: the service before
    new_exact        exact_max_rows 10,000: 5,000 rows -> EXACT
    new_own_index    exact_max_rows 1,000, the own index valid -> OWN_INDEX
    new_exact_no_rls new_exact without the role switch (what row-level security costs)

    nice -n 19 .venv/bin/python bench/rag_scale.py              # retrieval designs
    nice -n 19 .venv/bin/python bench/rag_scale.py --ingest     # + ingestion, onnx and static

Recall@10 is against numpy's exact top 10 of tenant 1's rows. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from loom_common import db
from loom_common.devstack import infra
from loom_common.migrations import apply_migrations

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".loom" / "bench-rag"
K, BLOCK, TENANTS, SEED = 10, 64, 200, 5
BASE_ROWS, QUERIES = 7_192, 1_000  # the corpus's first 8,192 vectors: 7,192 to perturb, 1,000 queries


def dataset_id(tenant: int) -> str:
    return str(uuid.UUID(int=tenant))


def layout(total: int, share: float, block: int = BLOCK) -> np.ndarray:
    """Tenant of each row: blocks of `block` rows, tenant 1 owning `share` of the blocks."""
    rng = np.random.default_rng(SEED)
    blocks = -(-total // block)  # the last block may be cut short
    owner = rng.integers(2, TENANTS, size=blocks).astype(np.int32)
    owner[rng.choice(blocks, size=round(blocks * share), replace=False)] = 1
    return np.repeat(owner, block)[:total]


async def build(url: str, vectors: np.ndarray, tenants: np.ndarray, base_rows: int) -> dict:
    """Load the segments once (COPY, then the shared HNSW index); kept while the sizes match."""
    conn = await db.create_pool(url, schema="rag", min_size=1, max_size=1)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_scale (rows bigint, base bigint, load_s float8, "
                           "build_s float8)")
        done = await conn.fetchrow("SELECT * FROM bench_scale")
        if done and done["rows"] == len(vectors) and done["base"] == base_rows:
            return dict(done)
        await conn.execute("TRUNCATE segments, documents, datasets CASCADE; DELETE FROM bench_scale")
        await conn.execute("DROP INDEX IF EXISTS segments_embedding_384")
        t0 = time.perf_counter()
        for t in range(1, TENANTS):
            await conn.execute(
                "INSERT INTO datasets (id, tenant_id, name, embedding_model, embedding_dim, process_rule) "
                "VALUES ($1::uuid, $2, 'kb', 'all-minilm:l6-v2', 384, '{}'::jsonb)", dataset_id(t), f"t{t}")
            await conn.execute(
                "INSERT INTO documents (id, tenant_id, dataset_id, name, position, data_source_type, file_key, "
                "process_rule, status, segments_done, segments_total) VALUES ($1::uuid, $2, $1::uuid, 'doc', 1, "
                "'text', 'none', '{}'::jsonb, 'completed', $3, $3)",
                dataset_id(t), f"t{t}", int((tenants == t).sum()))
        async with conn.acquire() as c:
            await c.execute("CREATE UNLOGGED TABLE IF NOT EXISTS scale_staging (position int, tenant int, "
                            "embedding vector(384)); TRUNCATE scale_staging")
            for start in range(0, len(vectors), 50_000):
                await c.copy_records_to_table("scale_staging", records=[
                    (start + i, int(tenants[start + i]), v) for i, v in enumerate(vectors[start:start + 50_000])])
            await c.execute("""
                INSERT INTO segments (id, tenant_id, dataset_id, document_id, revision, position, content, tokens,
                                      embedding_model, embedding_dim, embedding, tsv)
                SELECT gen_random_uuid(), 't' || tenant, lpad(to_hex(tenant), 32, '0')::uuid,
                       lpad(to_hex(tenant), 32, '0')::uuid, 1, position, 'row ' || position, 2,
                       'all-minilm:l6-v2', 384, embedding::vector, ''::tsvector
                FROM scale_staging ORDER BY position""")
            await c.execute("DROP TABLE scale_staging")
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        async with conn.acquire() as c:
            await c.execute("SET maintenance_work_mem = '2GB'; SET max_parallel_maintenance_workers = 2")
            await c.execute("CREATE INDEX segments_embedding_384 ON segments USING hnsw "
                            "((embedding::vector(384)) vector_cosine_ops) WITH (m = 16, ef_construction = 64) "
                            "WHERE embedding_dim = 384")
            await c.execute("VACUUM ANALYZE segments")
        build_s = time.perf_counter() - t0
        await conn.execute("INSERT INTO bench_scale VALUES ($1, $2, $3, $4)", len(vectors), base_rows, load_s,
                           build_s)
        return {"rows": len(vectors), "base": base_rows, "load_s": load_s, "build_s": build_s}
    finally:
        await conn.close()


async def designs(url: str, vectors: np.ndarray, tenants: np.ndarray, queries: np.ndarray) -> dict:
    from loom_rag.domain.models import RetrievalQuery, SearchMethod
    from loom_rag.domain.vector_routes import IndexPolicy, Route
    from loom_rag.retrieval.rerank import LexicalOverlapReranker
    from loom_rag.retrieval.service import Retriever
    from loom_rag.store import vector_indexes
    from loom_rag.store.tenancy import TenantDb

    mine = np.flatnonzero(tenants == 1)
    truth = np.argsort(-(queries @ vectors[mine].T), axis=1)[:, :K]
    truth_pos = [set(mine[t].tolist()) for t in truth]
    pool = await db.create_pool(url, schema="rag", min_size=2, max_size=4)
    try:
        ds = dataset_id(1)
        name = vector_indexes.index_name(384, ds)
        await pool.execute(f"DROP INDEX IF EXISTS {name}")  # built again below, timed
        t0 = time.perf_counter()
        async with pool.acquire() as conn:
            await vector_indexes.build(conn, 384, ds)
        own_build_s = time.perf_counter() - t0
        await pool.execute("ANALYZE segments")
        tdb = await TenantDb.open(pool)
        rr = LexicalOverlapReranker()
        retrievers = {
            "old_shared": Retriever(TenantDb(pool, rls_role=None), None, rr, policy=IndexPolicy.shared_only()),
            "new_exact": Retriever(tdb, None, rr, policy=IndexPolicy(exact_max_rows=10_000)),
            "new_own_index": Retriever(tdb, None, rr, policy=IndexPolicy(exact_max_rows=1_000)),
            # What the row-level-security role switch costs the exact route.
            "new_exact_no_rls": Retriever(TenantDb(pool, rls_role=None), None, rr,
                                          policy=IndexPolicy(exact_max_rows=10_000)),
        }
        async with pool.acquire() as conn:
            scope = (await vector_indexes.scopes(conn, "t1", [ds], 384))[0]
        routes = {n: r.policy.route(scope).value if not r.policy.all_shared else Route.SHARED.value
                  for n, r in retrievers.items()}

        async def one(r: Retriever, q: np.ndarray) -> list:
            return await r.retrieve(RetrievalQuery("t1", [ds], "q", method=SearchMethod.VECTOR, top_k=K,
                                                   query_vector=q.tolist()))

        for q in queries[:30]:  # warm caches, untimed
            for r in retrievers.values():
                await one(r, q)
        lat: dict[str, list[float]] = {n: [] for n in retrievers}
        got: dict[str, list[set[int]]] = {n: [] for n in retrievers}
        load = [os.getloadavg()[0]]
        names = list(retrievers)
        for i, q in enumerate(queries):
            for n in names[i % len(names):] + names[:i % len(names)]:  # interleaved, rotating who goes first
                t0 = time.perf_counter()
                hits = await one(retrievers[n], q)
                lat[n].append((time.perf_counter() - t0) * 1000)
                got[n].append({h.position for h in hits})
            if i % 200 == 0:
                load.append(os.getloadavg()[0])
        plans = await _plans(pool, ds, queries[0])
        out: dict = {"rows": len(vectors), "tenant_rows": len(mine), "own_index_build_s": own_build_s,
                     "default_policy_route": IndexPolicy().route(scope).value,
                     "load_1min": [round(x, 1) for x in load], "plans": plans}
        for n in names:
            out[n] = {"route": routes[n],
                      "recall_at_10": float(np.mean([len(g & t) / K for g, t in zip(got[n], truth_pos, strict=True)])),
                      "returned_k_min": min(len(g) for g in got[n]),
                      "returned_k_mean": float(np.mean([len(g) for g in got[n]])),
                      "p50_ms": float(np.percentile(lat[n], 50)), "p99_ms": float(np.percentile(lat[n], 99)),
                      "queries": len(queries)}
        return out
    finally:
        await pool.close()


async def _plans(pool, ds: str, q: np.ndarray) -> dict:
    """The index each route's query uses (EXPLAIN of the SQL store.search.vector sends)."""
    out = {}
    base = ("FROM segments s WHERE s.tenant_id = 't1' AND {where} AND s.embedding_dim = 384 AND s.enabled "
            "AND s.document_enabled ORDER BY {order} LIMIT 10")
    dist = "s.embedding::vector(384) <=> $1::vector(384)"
    for route, where, order in (("shared", "s.dataset_id = ANY($2::uuid[])", dist),
                                ("own_index", "s.dataset_id = $2::uuid", dist),
                                ("exact", "s.dataset_id = ANY($2::uuid[])", f"({dist}) + 0")):
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.ef_search = 64; "
                               "SET LOCAL plan_cache_mode = force_custom_plan")
            if route == "own_index":  # as store.search.vector does for this route
                await conn.execute("SET LOCAL enable_sort = off")
            plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) SELECT s.id {base.format(where=where, order=order)}",
                                       q, ds if route == "own_index" else [ds])
        text = json.dumps(plan)
        out[route] = ("own hnsw" if "_ds_" in text else "shared hnsw" if "segments_embedding_384" in text
                      else "btree (tenant, dataset) + sort" if "segments_dataset" in text else
                      "seqscan" if "Seq Scan" in text else "other")
    return out


async def ingest(nats_url: str, url: str, docs: int, paragraphs: int, backends: list[str]) -> dict:
    """bench/rag.py's end-to-end ingestion (real processes) for onnx and static, load noted."""
    import rag
    import rag_corpus

    texts = rag_corpus.texts(120_000)[-docs * paragraphs:]
    out = {}
    for backend in backends:
        before = os.getloadavg()[0]
        got = await rag.ingestion(nats_url, url, docs, paragraphs, STATE / "home", backend=backend, texts=texts)
        out[backend] = {**got, "load_1min_before": round(before, 1), "load_1min_after": round(os.getloadavg()[0], 1)}
    return out


async def service_routes(url: str, base: np.ndarray, queries: np.ndarray, total: int, share: float,
                         block: int = BLOCK) -> dict:
    """The table built (or kept) from `base`, then the three designs (bench/rag.py calls this)."""
    import rag_real

    await db.ensure_database(url)
    await apply_migrations(url, "rag", "loom_rag.migrations")
    vectors = rag_real.perturbed(base, total, noise=0.2, seed=SEED)
    tenants = layout(total, share, block)
    built = await build(url, vectors, tenants, len(base))
    return {"table": built, **await designs(url, vectors, tenants, queries)}


async def main(total: int, share: float, with_ingest: bool, docs: int, paragraphs: int, block: int,
               backends: list[str]) -> dict:
    import rag_corpus

    os.environ.setdefault("XDG_RUNTIME_DIR", str(STATE))
    pg = infra.EmbeddedPostgres(STATE / "pg").start()
    nats_server = infra.EmbeddedNats(STATE / "nats").start() if with_ingest else None
    try:
        out: dict = {}
        real = await asyncio.to_thread(rag_corpus.vectors, rag_corpus.texts(BASE_ROWS + QUERIES))
        db_name = "loom_bench_rag_scale" + ("" if block == BLOCK else f"_b{block}")  # each layout's table kept
        if total:
            out = await service_routes(pg.url(db_name), real[:BASE_ROWS], real[BASE_ROWS:], total, share, block)
        if with_ingest:
            ing_url = pg.url("loom_bench_rag")
            await db.ensure_database(ing_url)
            await apply_migrations(ing_url, "rag", "loom_rag.migrations")
            out["ingest"] = await ingest(nats_server.url, ing_url, docs, paragraphs, backends)
        return out
    finally:
        if nats_server:
            nats_server.stop()
        pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="0: no retrieval designs (ingestion only)")
    parser.add_argument("--share", type=float, default=0.005)
    parser.add_argument("--ingest", action="store_true", help="also ingestion end to end, onnx and static")
    parser.add_argument("--block", type=int, default=BLOCK,
                        help="rows per tenant block (1: every row's tenant drawn alone, as bench/rag_real.py)")
    parser.add_argument("--backends", default="onnx,static", help="ingestion backends, comma-separated")
    parser.add_argument("--docs", type=int, default=12)
    parser.add_argument("--paragraphs", type=int, default=20)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    (STATE / "home").mkdir(parents=True, exist_ok=True)
    figures = asyncio.run(main(args.rows, args.share, args.ingest, args.docs, args.paragraphs, args.block,
                                 args.backends.split(",")))
    for name in ("old_shared", "new_exact", "new_own_index", "new_exact_no_rls") if args.rows else ():
        d = figures[name]
        print(f"{name:<14} route {d['route']:<9} recall@10 {d['recall_at_10']:.3f}  k min {d['returned_k_min']}  "
              f"p50 {d['p50_ms']:.1f} ms  p99 {d['p99_ms']:.1f} ms")
    print(json.dumps(figures))
