"""The database pool gauges (loom_common.pool_metrics) against a real Postgres and pool."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY, generate_latest

from loom_common import db, pool_metrics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _sample(name: str, **labels) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def _until(predicate, ticks: int = 500) -> None:
    for _ in range(ticks):  # the acquire task needs a few loop turns to queue up
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never met")


async def test_pool_gauges_show_in_use_idle_and_waiting(database_url: str) -> None:
    await db.ensure_database(database_url)
    pool = await db.create_pool(database_url, schema="pooltest", min_size=1, max_size=2, vector=False)
    labels = {"service": "pooltest", "server": pool_metrics.server_label(database_url)}
    try:
        assert _sample("loom_db_pool_max_connections", **labels) == 2
        assert _sample("loom_db_pool_connections", **labels, state="idle") == 1
        assert _sample("loom_db_pool_connections", **labels, state="in_use") == 0
        assert _sample("loom_db_pool_waiting", **labels) == 0

        first = await pool.acquire()
        second = await pool.acquire()
        assert _sample("loom_db_pool_connections", **labels, state="in_use") == 2
        assert _sample("loom_db_pool_connections", **labels, state="idle") == 0
        # the pool is exhausted: two more acquires wait
        async def take():
            return await pool.acquire()

        waiters = [asyncio.create_task(take()) for _ in range(2)]
        await _until(lambda: _sample("loom_db_pool_waiting", **labels) == 2)
        await pool.release(first)  # one waiter takes it
        await _until(lambda: _sample("loom_db_pool_waiting", **labels) == 1)
        await pool.release(second)
        conns = [await asyncio.wait_for(task, 30) for task in waiters]
        assert _sample("loom_db_pool_waiting", **labels) == 0
        assert _sample("loom_db_pool_connections", **labels, state="in_use") == 2
        for conn in conns:
            await pool.release(conn)
        assert _sample("loom_db_pool_connections", **labels, state="in_use") == 0
        assert _sample("loom_db_pool_connections", **labels, state="idle") == 2
        text = generate_latest(REGISTRY).decode()
        assert "loom_db_pool_waiting{" in text
        assert "@" not in "".join(line for line in text.splitlines() if line.startswith("loom_db_pool"))
    finally:
        pool.terminate()  # close() would wait forever for a connection a failed assert left out
    # a closed pool leaves the metrics
    assert _sample("loom_db_pool_max_connections", **labels) is None
