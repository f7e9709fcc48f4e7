"""The RAG benchmark on real embeddings (bench/rag.py calls these; bench/rag_corpus.py makes the data).

    real        HNSW (m 16, ef_construction 64) over the corpus's MiniLM vectors vs exact search
                (numpy): recall@10 and p50/p99 of the SQL query, for held-out chunks as queries.
    halfvec     the same vectors stored as halfvec(384) vs vector(384): table + index size,
                index build time, recall@10.
    small       1M vectors made from the real ones (each a real vector plus small noise,
                renormalised), one tenant owning 0.5 % of them at random; its queries compared
                across designs: the global HNSW index with pgvector's iterative scan (relaxed
                and strict order), and a partial HNSW index of that tenant. Recall@10 against
                exact search over the tenant's own rows, and how many of the k rows came back.
    quality     each embedding backend on the same task: a docstring's summary line as the query,
                the rest of that docstring as the passage to find among all pairs' passages;
                recall@10 and MRR.

Tables live in the bench database (schema bench_real), built once and kept: a rerun only queries.
"""

from __future__ import annotations

import time

import asyncpg
import numpy as np

K = 10


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


async def _connect(url: str) -> asyncpg.Connection:
    from pgvector.asyncpg import register_vector

    conn = await asyncpg.connect(url)
    await conn.execute("CREATE EXTENSION IF NOT EXISTS vector; CREATE SCHEMA IF NOT EXISTS bench_real")
    await register_vector(conn)
    return conn


async def _built(conn, table: str, rows: int) -> dict | None:
    """The stored build figures of `table` if it holds `rows` rows with its index, else None."""
    await conn.execute("CREATE TABLE IF NOT EXISTS bench_real.builds (name text PRIMARY KEY, rows bigint, "
                       "build_s double precision, load_s double precision)")
    got = await conn.fetchrow("SELECT * FROM bench_real.builds WHERE name = $1", table)
    if got and got["rows"] == rows:
        return dict(got)
    return None


async def _load(conn, table: str, vectors: np.ndarray, kind: str, tenants: np.ndarray | None = None,
                index_where: str = "") -> dict:
    """(Re)create bench_real.<table> with `vectors` (binary COPY) and its HNSW index, timed."""
    if (done := await _built(conn, table, len(vectors))) is not None:
        return done
    ops = {"vector": "vector_cosine_ops", "halfvec": "halfvec_cosine_ops"}[kind]
    await conn.execute(f"DROP TABLE IF EXISTS bench_real.{table}")
    await conn.execute(f"CREATE TABLE bench_real.{table} (id int PRIMARY KEY, tenant_id int NOT NULL DEFAULT 0, "
                       f"embedding {kind}(384) NOT NULL)")
    t0 = time.perf_counter()
    ten = tenants if tenants is not None else np.zeros(len(vectors), dtype=np.int32)
    for start in range(0, len(vectors), 50_000):  # vector rows; a halfvec column converts on insert
        await conn.copy_records_to_table(
            f"{table}", schema_name="bench_real", columns=["id", "tenant_id", "embedding"],
            records=[(start + i, int(ten[start + i]), v) for i, v in enumerate(vectors[start:start + 50_000])])
    load_s = time.perf_counter() - t0
    await conn.execute("SET maintenance_work_mem = '2GB'; SET max_parallel_maintenance_workers = 2")
    t0 = time.perf_counter()
    await conn.execute(f"CREATE INDEX ON bench_real.{table} USING hnsw (embedding {ops}) "
                       f"WITH (m = 16, ef_construction = 64) {index_where}")
    build_s = time.perf_counter() - t0
    if tenants is not None:
        await conn.execute(f"CREATE INDEX ON bench_real.{table} (tenant_id)")
    await conn.execute(f"VACUUM ANALYZE bench_real.{table}")
    await conn.execute("INSERT INTO bench_real.builds VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE "
                       "SET rows = $2, build_s = $3, load_s = $4", table, len(vectors), build_s, load_s)
    return {"name": table, "rows": len(vectors), "build_s": build_s, "load_s": load_s}


async def _search(conn, table: str, queries: np.ndarray, *, cast: str, tenant: int | None = None,
                  settings: dict[str, str] | None = None) -> tuple[list[list[int]], list[float], str]:
    where = "WHERE tenant_id = $2" if tenant is not None else ""
    sql = (f"SELECT id FROM bench_real.{table} {where} ORDER BY embedding <=> $1::vector::{cast} LIMIT {K}")
    for key, value in (settings or {}).items():
        await conn.execute(f"SET {key} = '{value}'")
    stmt = await conn.prepare(sql)
    args = (tenant,) if tenant is not None else ()
    for q in queries[:20]:  # warm the index pages into the cache, untimed
        await stmt.fetch(q, *args)
    ids, lat = [], []
    for q in queries:
        t0 = time.perf_counter()
        rows = await stmt.fetch(q, *args)
        lat.append((time.perf_counter() - t0) * 1000)
        ids.append([r["id"] for r in rows])
    plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", queries[0], *args)  # under the same settings
    for key in settings or {}:
        await conn.execute(f"RESET {key}")
    return ids, lat, _plan_kind(plan)


def _recall(got: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(t.tolist())) / K for g, t in zip(got, truth, strict=True)]))


def _exact(vectors: np.ndarray, queries: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
    top = np.argsort(-(queries @ vectors.T), axis=1)[:, :K]
    return ids[top] if ids is not None else top


async def real_and_halfvec(url: str, vectors: np.ndarray, queries: np.ndarray, ef_search: int) -> dict:
    conn = await _connect(url)
    try:
        truth = _exact(vectors, queries)
        out = {}
        for kind in ("vector", "halfvec"):
            table = f"real_{kind}_{len(vectors)}"
            build = await _load(conn, table, vectors, kind)
            ids, lat, _ = await _search(conn, table, queries, cast=f"{kind}(384)",
                                     settings={"hnsw.ef_search": str(ef_search)})
            size = await conn.fetchval(f"SELECT pg_total_relation_size('bench_real.{table}')")
            index = await conn.fetchval("SELECT sum(pg_relation_size(indexrelid)) FROM pg_index "
                                        f"WHERE indrelid = 'bench_real.{table}'::regclass")
            out[kind] = {"recall_at_10": _recall(ids, truth), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
                         "build_s": build["build_s"], "total_bytes": int(size), "index_bytes": int(index),
                         "rows": len(vectors)}
        return out
    finally:
        await conn.close()


def perturbed(base: np.ndarray, n: int, noise: float, seed: int) -> np.ndarray:
    """`n` vectors: base[i % len(base)] plus Gaussian noise of norm ~`noise`, renormalised."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        idx = np.arange(start, min(n, start + 100_000)) % len(base)
        x = base[idx] + rng.normal(scale=noise / np.sqrt(base.shape[1]), size=(len(idx), base.shape[1]))
        out[start:start + len(idx)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


async def small_tenant(url: str, base: np.ndarray, queries: np.ndarray, total: int, share: float,
                       ef_search: int, seed: int = 5) -> dict:
    """One tenant owning `share` of `total` rows; its recall and returned k under each design."""
    rng = np.random.default_rng(seed)
    vectors = perturbed(base, total, noise=0.2, seed=seed)
    tenants = rng.integers(2, 200, size=total).astype(np.int32)  # ~200 other tenants
    mine = rng.choice(total, size=int(total * share), replace=False)
    tenants[mine] = 1
    table = f"tenant_{total}_b{len(base)}"  # the rows derive from `base`: a new base, a new table
    conn = await _connect(url)
    try:
        build = await _load(conn, table, vectors, "vector", tenants=tenants)
        truth = _exact(vectors[mine], queries, ids=mine)
        designs = {
            # The rag service's settings (retrieval/service.py): global index, relaxed iterative scan.
            "global_hnsw_relaxed": {"hnsw.ef_search": str(ef_search), "hnsw.iterative_scan": "relaxed_order",
                                    "enable_seqscan": "off", "enable_bitmapscan": "off", "enable_indexscan": "on"},
            "global_hnsw_strict": {"hnsw.ef_search": str(ef_search), "hnsw.iterative_scan": "strict_order",
                                   "enable_seqscan": "off", "enable_bitmapscan": "off"},
            "global_hnsw_no_iterative": {"hnsw.ef_search": str(ef_search), "hnsw.iterative_scan": "off",
                                         "enable_seqscan": "off", "enable_bitmapscan": "off"},
            "planner_choice": {"hnsw.ef_search": str(ef_search), "hnsw.iterative_scan": "relaxed_order"},
        }
        out: dict = {"rows": total, "tenant_rows": len(mine), "build_s": build["build_s"]}
        await conn.execute(f"DROP INDEX IF EXISTS bench_real.{table}_t1")  # made again below, timed
        # The global HNSW designs must not fall back to the tenant_id b-tree (exact, no HNSW):
        # hide it for them, then restore it for the planner's own choice.
        btree = await conn.fetchval("SELECT indexrelid::regclass::text FROM pg_index i JOIN pg_class c "
                                    "ON c.oid = i.indexrelid WHERE indrelid = $1::regclass AND c.relam = "
                                    "(SELECT oid FROM pg_am WHERE amname = 'btree') AND i.indkey[0] = 2",
                                    f"bench_real.{table}")
        for name, settings in designs.items():
            tx = conn.transaction()
            await tx.start()
            try:
                if name != "planner_choice" and btree:
                    await conn.execute(f"DROP INDEX {btree}")  # rolled back below
                ids, lat, plan = await _search(conn, table, queries, cast="vector(384)", tenant=1,
                                               settings=settings)
            finally:
                await tx.rollback()
            out[name] = {"recall_at_10": _recall(ids, truth), "returned_k_mean": float(np.mean([len(i) for i in ids])),
                         "returned_k_min": int(min(len(i) for i in ids)), "p50_ms": pct(lat, 50),
                         "p99_ms": pct(lat, 99), "plan": plan}
        # A partial HNSW index holding only this tenant's rows (a per-tenant index for big tenants).
        t0 = time.perf_counter()
        await conn.execute(f"CREATE INDEX {table}_t1 ON bench_real.{table} USING hnsw "
                           f"(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64) WHERE tenant_id = 1")
        partial_s = time.perf_counter() - t0
        ids, lat, plan = await _search(conn, table, queries, cast="vector(384)", tenant=1,
                                       settings={"hnsw.ef_search": str(ef_search), "enable_seqscan": "off"})
        out["partial_hnsw"] = {"recall_at_10": _recall(ids, truth),
                               "returned_k_mean": float(np.mean([len(i) for i in ids])),
                               "returned_k_min": int(min(len(i) for i in ids)), "p50_ms": pct(lat, 50),
                               "p99_ms": pct(lat, 99), "build_s": partial_s, "plan": plan}
        return out
    finally:
        await conn.close()


def _plan_kind(plan_json) -> str:
    import json

    text = json.dumps(plan_json)
    return "partial hnsw" if "_t1" in text else "hnsw" if "embedding_idx" in text else (
        "btree+sort" if "tenant_id_idx" in text else "seqscan" if "Seq Scan" in text else "other")


async def quality(pairs: list[tuple[str, str]], backends: list[str], cache) -> dict:
    """Recall@10 and MRR of finding each pair's passage from its summary line, per backend."""
    from rag_corpus import embed_all

    out = {}
    heads, bodies = [h for h, _ in pairs], [b for _, b in pairs]
    for backend in backends:
        path = cache / f"quality-{backend}-{len(pairs)}.npz"
        if path.exists():
            got = np.load(path)
            q, d, secs = got["q"], got["d"], float(got["secs"])
        else:
            t0 = time.perf_counter()
            q = await embed_all(heads, backend)
            d = await embed_all(bodies, backend)
            secs = time.perf_counter() - t0
            np.savez(path, q=q, d=d, secs=secs)
        scores = q @ d.T
        rank = (scores > scores[np.arange(len(q)), np.arange(len(q))][:, None]).sum(1)  # 0 = first
        out[backend] = {"recall_at_10": float((rank < K).mean()), "mrr": float((1 / (rank + 1)).mean()),
                        "texts_per_s": 2 * len(pairs) / secs, "pairs": len(pairs)}
    return out
