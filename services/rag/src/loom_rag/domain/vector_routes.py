"""Which index answers a vector search of each dataset: a small tenant in a big table.

The shared HNSW index (one per dimension, every tenant's vectors) serves a dataset that is a
large part of the table well. It serves a small one badly: the graph walk finds the nearest
vectors of the whole table, the tenant and dataset filter drops nearly all of them, and
pgvector's iterative scan then walks on through thousands of other tenants' tuples. Measured
for a tenant owning 0.5 % of 1M real-text vectors: recall@10 0.77, p99 149 ms (docs/rag.md).
So each dataset of a search takes one of three routes, by its row count:

    EXACT      rows <= exact_max_rows: its rows through the (tenant_id, dataset_id) b-tree,
               every distance computed and sorted. Exact, and fast at this size.
    OWN_INDEX  bigger, and a partial HNSW index of its own is valid: that index holds only
               the dataset's vectors, so the walk never meets another tenant's. IndexKeeper
               (retrieval/index_keeper.py) builds one, off the request path, once a dataset
               passes own_index_min_rows while it stays a minor share of its dimension's rows.
    SHARED     anything else (a dataset that is most of the table, or whose own index is
               still being built): the shared index with the iterative scan, as before.

Row counts are the datasets' written segments (documents.segments_done summed): an estimate
that costs one small read per search; a wrong one makes a search slower, never wrong.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum


class Route(StrEnum):
    EXACT = "exact"
    OWN_INDEX = "own_index"
    SHARED = "shared"


@dataclass(frozen=True)
class DatasetScope:
    """What the router knows of one dataset: its rows of the query's dimension, and whether
    its own index exists and is valid (a failed or unfinished concurrent build is not)."""

    dataset_id: str
    rows: int
    own_index: bool


@dataclass(frozen=True)
class IndexPolicy:
    # A dataset of at most this many rows is searched exactly. The exact scan's cost grows with
    # the rows: at 5,000 rows in a 1M table it took 3x the own index's time (p50 15.7 vs 5.2 ms
    # at load 9.5, bench/rag_scale.py), so the routes cross over at about 2,000.
    exact_max_rows: int = 2_000
    # Past this many rows a dataset gets its own partial HNSW index (if it is a minor share)...
    own_index_min_rows: int = 2_000
    # ... while it holds at most this share of its dimension's rows: a dataset that is most of
    # the table is served as well by the shared index, and a second graph would double memory.
    own_index_max_share: float = 0.5
    # Own indexes answer searches (False: the routing of the old service, for benchmarks).
    use_own_indexes: bool = True

    @classmethod
    def shared_only(cls) -> IndexPolicy:
        """Every dataset on the shared index: the service before per-dataset routing."""
        return cls(exact_max_rows=-1, own_index_min_rows=2**62, use_own_indexes=False)

    @property
    def all_shared(self) -> bool:
        """No dataset can take another route (no need to look at their sizes)."""
        return self.exact_max_rows < 0 and not self.use_own_indexes

    def route(self, scope: DatasetScope) -> Route:
        if scope.rows <= self.exact_max_rows:
            return Route.EXACT
        if scope.own_index and self.use_own_indexes:
            return Route.OWN_INDEX
        return Route.SHARED

    def routes(self, scopes: list[DatasetScope]) -> dict[Route, list[str]]:
        """Dataset ids per route, in the order given."""
        out: dict[Route, list[str]] = defaultdict(list)
        for scope in scopes:
            out[self.route(scope)].append(scope.dataset_id)
        return dict(out)

    def wants_own_index(self, rows: int, dimension_rows: int) -> bool:
        """Whether a dataset should have its own index now (IndexKeeper builds missing ones)."""
        return rows >= self.own_index_min_rows and rows <= self.own_index_max_share * dimension_rows

    def keeps_own_index(self, rows: int) -> bool:
        """Whether an existing own index stays: dropped only once the dataset shrank to half
        the threshold (hysteresis: a dataset hovering at the threshold is not rebuilt again
        and again), or is gone."""
        return rows >= self.own_index_min_rows // 2
