"""Retrieval reads the read replica (loom_common.read_replica) on a real streaming standby:
with its replay paused, a document indexed on the primary is not found by a search routed
to the replica (that is where the search went), and is found once the tenant's write is
marked (the primary) or the replica has caught up."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from loom_common import db
from loom_common.db import _with_database
from loom_common.read_replica import Reads
from loom_common.testing import eventually, migrated_pool
from loom_rag.domain.models import RetrievalQuery
from loom_rag.retrieval.rerank import LexicalOverlapReranker
from loom_rag.retrieval.service import Retriever

sys.path.insert(0, str(Path(__file__).parent))  # the pipeline test's in-process rag
from test_rag_pipeline import Rag

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_retrieval_reads_the_replica_and_falls_back_for_a_fresh_write(replicated_postgres, tmp_path, builders):
    primary, replica = replicated_postgres
    name = f"rag_{uuid.uuid4().hex[:10]}"
    async with migrated_pool(_with_database(primary.url(), name), "rag", "loom_rag.migrations") as pool:
        rag = await Rag(pool, tmp_path, builders.embedder()).setup()
        replica_pool = await db.create_pool(_with_database(replica.url(), name), schema="rag", min_size=0)
        admin = await db.create_pool(replica.url("postgres"), schema="public", vector=False, max_size=1)
        reads = Reads(pool, replica_pool)
        retriever = Retriever(rag.db, rag.embedder, LexicalOverlapReranker(), reads=reads)
        t = f"t-{uuid.uuid4().hex[:8]}"

        async def names(q: RetrievalQuery) -> set[str]:
            return {hit.document_name for hit in await retriever.retrieve(q)}
        try:
            ds = await rag.m.create_dataset(t, name="notes")
            await rag.m.create_document(t, ds.id, name="a.txt", source=rag_text("The harbour opens at dawn."))
            await rag.drain()

            async def replica_has_it() -> bool:
                await reads.probe()
                return reads.replica_usable(t)

            await eventually(replica_has_it, "the replica replays the indexed document")
            assert await reads.pool(t).fetchval("SELECT pg_is_in_recovery()")
            assert await names(RetrievalQuery(t, [ds.id], "harbour dawn")) == {"a.txt"}

            await admin.execute("SELECT pg_wal_replay_pause()")
            await rag.m.create_document(t, ds.id, name="b.txt", source=rag_text("Lanterns glow over quiet canals."))
            await rag.drain()
            # Unmarked, the search goes to the paused replica, which lacks the new document.
            assert "b.txt" not in await names(RetrievalQuery(t, [ds.id], "lanterns canals"))
            # A dataset the replica has not got at all (made through another rag replica, say):
            # the lookup falls back to the primary rather than answering "not found".
            ds2 = await rag.m.create_dataset(t, name="fresh")
            await rag.m.create_document(t, ds2.id, name="c.txt", source=rag_text("Kites over the dunes."))
            await rag.drain()
            assert await names(RetrievalQuery(t, [ds2.id], "kites dunes")) == {"c.txt"}
            reads.wrote(t)  # the tenant's write: its searches read the primary until the replica has it
            assert "b.txt" in await names(RetrievalQuery(t, [ds.id], "lanterns canals"))
            await admin.execute("SELECT pg_wal_replay_resume()")
            await eventually(replica_has_it, "the resumed replica catches up")
            assert reads.replica_usable(t)
            assert "b.txt" in await names(RetrievalQuery(t, [ds.id], "lanterns canals"))
        finally:
            await admin.execute("SELECT pg_wal_replay_resume()")
            await admin.close()
            await replica_pool.close()


def rag_text(text: str):
    from loom_rag.management import Source

    return Source(text=text)
