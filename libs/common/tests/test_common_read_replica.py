"""The read/write split (loom_common.read_replica) against a real streaming replica: two
embedded Postgres servers, the second made by pg_basebackup -R from the first.

Time is the test's own clock (probes are called by hand), so no assertion depends on how fast
a loaded machine replays WAL: the tests wait for the replica with `eventually`, never a bound."""

from __future__ import annotations

import pytest

from loom_common import db
from loom_common.devstack import infra
from loom_common.read_replica import Reads
from loom_common.testing import eventually

pytestmark = pytest.mark.slow  # two servers and a base backup


@pytest.fixture(scope="module")
def servers(replicated_postgres):
    return replicated_postgres


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def reads(servers):
    primary, replica = servers
    p = await db.create_pool(primary.url("postgres"), schema="public", vector=False, max_size=3)
    r = await db.create_pool(replica.url("postgres"), schema="public", vector=False, min_size=0, max_size=3)
    await p.execute("CREATE TABLE IF NOT EXISTS notes (id text PRIMARY KEY, body text)")
    clock = Clock()
    reads = Reads(p, r, max_lag_s=5.0, clock=clock)
    reads.clock = clock
    yield reads
    await r.close()
    await p.close()


async def caught_up(reads: Reads) -> bool:
    """Probe once at the test clock's time: true when the replica has replayed that sample."""
    reads.clock.now += 0.001
    await reads.probe()
    return reads.synced_at == reads.clock.now


async def on_replica(pool) -> bool:
    return await pool.fetchval("SELECT pg_is_in_recovery()")


async def test_the_second_server_is_a_streaming_standby(servers):
    primary, replica = servers
    p = await db.create_pool(primary.url("postgres"), schema="public", vector=False, max_size=1)
    r = await db.create_pool(replica.url("postgres"), schema="public", vector=False, max_size=1)
    try:
        assert await on_replica(r) and not await on_replica(p)
        assert await p.fetchval("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 1
    finally:
        await r.close()
        await p.close()


async def test_reads_go_to_the_replica_and_a_fresh_write_is_read_back_from_the_primary(reads):
    assert reads.pool() is reads.primary  # never probed: nothing is known of the replica yet
    await eventually(lambda: caught_up(reads), "the replica replays the primary's WAL")
    assert await on_replica(reads.pool()) and await on_replica(reads.pool("ws-a"))

    with reads.writing("ws-a"):
        assert not await on_replica(reads.pool("ws-a"))  # a write in progress: its scope reads the primary
        await reads.primary.execute("INSERT INTO notes VALUES ('n1', 'fresh')")
    # Just written: read back from the primary, whatever the replica has replayed yet.
    pool = reads.pool("ws-a")
    assert not await on_replica(pool)
    assert await pool.fetchval("SELECT body FROM notes WHERE id = 'n1'") == "fresh"
    assert await on_replica(reads.pool("ws-b"))  # another scope keeps reading the replica

    # Once the replica has replayed a primary position sampled after the write, it serves it.
    await eventually(lambda: caught_up(reads), "the replica replays the write")
    pool = reads.pool("ws-a")
    assert await on_replica(pool)
    assert await pool.fetchval("SELECT body FROM notes WHERE id = 'n1'") == "fresh"


async def test_a_lagging_replica_serves_only_what_it_has_and_nothing_past_the_lag_bound(reads, servers):
    _, replica = servers
    await eventually(lambda: caught_up(reads), "the replica replays the primary's WAL")
    admin = await db.create_pool(replica.url("postgres"), schema="public", vector=False, max_size=1)
    try:
        await admin.execute("SELECT pg_wal_replay_pause()")
        await reads.primary.execute("INSERT INTO notes VALUES ('n2', 'written elsewhere')")
        await reads.primary.execute("INSERT INTO notes VALUES ('n3', 'written here')")
        reads.wrote("ws-a")
        reads.clock.now += 1.0
        assert not await caught_up(reads)  # paused: the new position is not replayed

        # The writer's scope reads its row from the primary; another scope still reads the
        # (stale) replica, which proves where its read went: the row is not there yet.
        assert await reads.pool("ws-a").fetchval("SELECT body FROM notes WHERE id = 'n3'") == "written here"
        other = reads.pool("ws-b")
        assert await on_replica(other)
        assert await other.fetchval("SELECT body FROM notes WHERE id = 'n2'") is None

        # Past the lag bound, no read goes to the replica at all.
        reads.clock.now += reads.max_lag_s
        assert not reads.replica_usable()
        assert await reads.pool("ws-b").fetchval("SELECT body FROM notes WHERE id = 'n2'") == "written elsewhere"

        await admin.execute("SELECT pg_wal_replay_resume()")
        await eventually(lambda: caught_up(reads), "the resumed replica catches up")
        assert await on_replica(reads.pool("ws-b"))
        assert await reads.pool("ws-b").fetchval("SELECT body FROM notes WHERE id = 'n2'") == "written elsewhere"
    finally:
        await admin.execute("SELECT pg_wal_replay_resume()")
        await admin.close()


async def test_an_unreachable_replica_sends_reads_to_the_primary(servers):
    primary, _ = servers
    p = await db.create_pool(primary.url("postgres"), schema="public", vector=False, max_size=1)
    # A "replica" nobody listens on: the read falls back, and later ones skip it.
    dead = await db.create_pool(infra.postgres_url(infra.free_port(), "postgres"), schema="public", vector=False,
                                min_size=0, max_size=1)
    clock = Clock()
    reads = Reads(p, dead, clock=clock)
    try:
        reads.synced_at = clock.now  # as if a probe had just succeeded
        assert reads.replica_usable()
        assert await reads.pool().fetchval("SELECT pg_is_in_recovery()") is False
        assert not reads.replica_usable()
        async with reads.pool().acquire() as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await dead.close()
        await p.close()


async def test_without_a_replica_every_read_is_the_primarys():
    class Pool:
        pass

    primary = Pool()
    reads = Reads(primary)  # type: ignore[arg-type]
    with reads.writing("ws"):
        assert reads.pool("ws") is primary
    assert reads.pool() is primary and not reads.replica_usable()
