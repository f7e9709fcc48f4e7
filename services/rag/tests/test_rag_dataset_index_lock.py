"""Creating a dataset does not wait for, or deadlock with, a dataset's own vector index being
built CONCURRENTLY (retrieval/index_keeper.py): `ensure_vector_index` takes no lock on
`segments` when the dimension's index exists (it once ran CREATE INDEX IF NOT EXISTS, whose
SHARE lock queued behind the build and could deadlock with it)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from loom_common.testing import migrated_pool
from loom_rag.store import datasets


@pytest.fixture
async def pool(database_url):
    async with migrated_pool(database_url, "rag", "loom_rag.migrations", max_size=4) as pool:
        yield pool


async def test_an_existing_dimension_takes_no_lock_on_segments(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as holder:
        tx = holder.transaction()
        await tx.start()
        try:
            # What CREATE INDEX CONCURRENTLY holds for the whole build: it conflicts with SHARE.
            await holder.execute("LOCK TABLE segments IN SHARE UPDATE EXCLUSIVE MODE")
            # The 384-d index comes with the migration. Before the fix this waited for the lock
            # (for as long as it is held): the generous bound only tells "returned" from "blocked".
            await asyncio.wait_for(datasets.ensure_vector_index(pool, 384), timeout=60)
            granted = await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE relation = 'segments'::regclass AND NOT granted")
            assert granted == 0
        finally:
            await tx.rollback()


async def test_a_new_dimension_still_gets_its_index(pool: asyncpg.Pool) -> None:
    await datasets.ensure_vector_index(pool, 7)
    assert await pool.fetchval("SELECT to_regclass('segments_embedding_7') IS NOT NULL")
    await datasets.ensure_vector_index(pool, 7)  # the second time: found, nothing to do
