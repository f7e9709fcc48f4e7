"""Database pool gauges for Prometheus, for every pool a service opens with `db.create_pool`.

Read when Prometheus scrapes (a collector, no task, no timer), from each live asyncpg pool:

    loom_db_pool_connections{service, server, state="in_use"|"idle"}   open connections
    loom_db_pool_max_connections{service, server}                     the pool's max_size
    loom_db_pool_waiting{service, server}                             acquires waiting for a
                                                                      connection right now

`service` is the pool's schema (one per service), `server` the database's host:port (a read
replica's pool is told apart from the primary's by it; no user, no password). A waiting count
above zero for minutes means the pool is too small for the load (`LOOM_DB_POOL_MAX`) or queries
hold connections too long: alert `DatabasePoolSaturated`.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import asyncpg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector


def server_label(dsn: str) -> str:
    parts = urlsplit(dsn)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"


def _waiting(pool: asyncpg.Pool) -> int:
    """Tasks blocked in `pool.acquire()`. asyncpg has no public count: its free connections sit
    in an asyncio.Queue and a waiting acquire is a pending getter of that queue
    (test_common_pool_metrics pins this against a real pool)."""
    getters = getattr(getattr(pool, "_queue", None), "_getters", ())
    return sum(1 for f in getters if not f.done())


class PoolCollector(Collector):
    def __init__(self) -> None:
        self._pools: list[tuple[asyncpg.Pool, str, str]] = []
        self._lock = threading.Lock()  # scrapes may run in another thread than the event loop

    def track(self, pool: asyncpg.Pool, *, service: str, dsn: str) -> asyncpg.Pool:
        with self._lock:
            self._pools.append((pool, service, server_label(dsn)))
        return pool

    def collect(self):
        connections = GaugeMetricFamily("loom_db_pool_connections", "Open database connections of the pool",
                                        labels=["service", "server", "state"])
        maximum = GaugeMetricFamily("loom_db_pool_max_connections", "Largest size of the pool",
                                    labels=["service", "server"])
        waiting = GaugeMetricFamily("loom_db_pool_waiting", "Acquires waiting for a free connection",
                                    labels=["service", "server"])
        with self._lock:
            self._pools = [p for p in self._pools if not p[0].is_closing()]  # closed pools leave
            pools = list(self._pools)
        totals: dict[tuple[str, str], list[int]] = {}
        for pool, service, server in pools:  # two pools with the same labels (tests) add up
            size, idle = pool.get_size(), pool.get_idle_size()
            t = totals.setdefault((service, server), [0, 0, 0, 0])
            t[0] += size - idle
            t[1] += idle
            t[2] += pool.get_max_size()
            t[3] += _waiting(pool)
        for (service, server), (in_use, idle, max_size, waits) in totals.items():
            connections.add_metric([service, server, "in_use"], in_use)
            connections.add_metric([service, server, "idle"], idle)
            maximum.add_metric([service, server], max_size)
            waiting.add_metric([service, server], waits)
        yield connections
        yield maximum
        yield waiting


POOLS = PoolCollector()
REGISTRY.register(POOLS)
