"""IndexKeeper: builds and drops the per-dataset HNSW indexes, in the background, never on a
request's path (domain/vector_routes.py says which datasets get one and why).

One pass: under an advisory lock (one keeper at a time across rag replicas), compare what the
datasets' sizes call for with the own indexes in the catalog; drop invalid ones (a failed or
interrupted concurrent build) and those of deleted or shrunken datasets, then build the missing
ones, biggest dataset first, one at a time, each with CREATE INDEX CONCURRENTLY: ingestion and
searches go on meanwhile, and a search uses the index only once it is valid.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from loom_common.logging import get_logger
from loom_rag import metrics
from loom_rag.domain.vector_routes import IndexPolicy
from loom_rag.store import vector_indexes

log = get_logger(__name__)


@dataclass
class KeeperPass:
    """What one pass did (locked: False when another replica's keeper held the lock)."""

    locked: bool = True
    built: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class IndexKeeper:
    def __init__(self, pool, policy: IndexPolicy, *, poll_s: float = 30.0):
        self.pool, self.policy, self.poll_s = pool, policy, poll_s

    async def reconcile(self) -> KeeperPass:
        done = KeeperPass()
        async with vector_indexes.keeper_lock(self.pool) as conn:
            if conn is None:
                return KeeperPass(locked=False)
            sizes = await vector_indexes.sizes(conn)
            have = {ix.name: ix for ix in await vector_indexes.existing(conn)}
            wanted, kept = {}, set()
            for s in sizes:
                name = vector_indexes.index_name(s.dim, s.dataset_id)
                if self.policy.wants_own_index(s.rows, s.dimension_rows):
                    wanted[name] = s
                elif name in have and self.policy.keeps_own_index(s.rows):
                    kept.add(name)
            for name, ix in have.items():
                if not ix.valid or (name not in wanted and name not in kept):
                    await vector_indexes.drop(conn, name)
                    done.dropped.append(name)
            missing = [s for name, s in wanted.items() if not (name in have and have[name].valid)]
            for s in sorted(missing, key=lambda s: -s.rows):
                name = vector_indexes.index_name(s.dim, s.dataset_id)
                started = time.perf_counter()
                try:
                    await vector_indexes.build(conn, s.dim, s.dataset_id)
                except Exception as exc:
                    # One dataset's failure must not stop the others (e.g. the dataset was
                    # deleted mid-build); its INVALID leftover is dropped by the next pass.
                    log.warning("own vector index build failed", index=name, error=str(exc))
                    done.failed.append(name)
                    continue
                log.info("own vector index built", index=name, rows=s.rows,
                         seconds=round(time.perf_counter() - started, 2))
                done.built.append(name)
            metrics.OWN_INDEXES.set(sum(ix.valid for ix in await vector_indexes.existing(conn)))
        return done

    async def run(self) -> None:
        """Reconcile every poll_s until cancelled; a failing pass is logged and retried."""
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be restarting: try again later
                log.warning("index keeper pass failed", error=str(exc))
            await asyncio.sleep(self.poll_s)
