"""Batches of several documents indexed together (loom_rag/ingest/batching.py), in-process
against the REAL Postgres+pgvector, with a test-only embedder held at a gate so that documents
pile up behind the first packs, as they do when embedding is the slow step.

What must hold whatever the packing: tenants never share an Embed call or a transaction and
their rows stay theirs; a document that fails or goes stale fails alone; a work item delivered
twice at once, or again afterwards, leaves each position once."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import pytest

from loom_common.errors import InvalidArgument, PermanentError
from loom_common.events import DocumentStatus
from loom_common.testing import eventually, migrated_pool
from loom_rag.domain.chunking import ChunkingConfig
from loom_rag.management import Source

sys.path.insert(0, str(Path(__file__).parent))  # the pipeline test's in-process rag
from test_rag_pipeline import Rag

from conftest import HashingEmbedder

pytestmark = pytest.mark.integration


class GatedEmbedder(HashingEmbedder):
    """Records every call (tenant, texts); holds each until the gate opens; refuses any call
    holding a text with `poison` in it, as inference refuses a bad input."""

    def __init__(self, poison: str | None = None):
        super().__init__()
        self.gate, self.poison = asyncio.Event(), poison
        self.log: list[tuple[str, list[str]]] = []

    async def embed(self, model, texts, *, tenant_id):
        self.log.append((tenant_id, list(texts)))
        await self.gate.wait()
        if self.poison and any(self.poison in t for t in texts):
            raise InvalidArgument("inputs: refused by the model", field="inputs")
        return await super().embed(model, texts, tenant_id=tenant_id)


@pytest.fixture
async def rag(database_url, tmp_path):
    async with migrated_pool(database_url, "rag", "loom_rag.migrations") as pool:
        r = await Rag(pool, tmp_path, GatedEmbedder()).setup()
        yield r
        await r.ingestor.close()


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


async def ingest_all(rag, *, waiting: int = 0, calls: int = 0) -> list[BaseException | None]:
    """Work every queued item at once; open the gate when `waiting` batches wait behind the
    first packs (so they are packed together) and `calls` Embed calls were made. Each item's
    outcome, in queue order."""
    items, rag.queue.items = list(rag.queue.items), []
    tasks = [asyncio.create_task(rag.ingestor.ingest(item)) for item in items]
    await eventually(lambda: len(rag.ingestor.batcher._waiting) >= waiting and len(rag.embedder.log) >= calls,
                     f"{waiting} batches waiting, {calls} calls made", timeout_s=30)
    rag.embedder.gate.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


async def status(rag, t: str, ds: str, doc: str):
    return await rag.m.get_document(t, ds, doc)


async def test_documents_of_one_tenant_share_embed_calls_and_transactions(rag) -> None:
    t = tenant()
    ds = await rag.m.create_dataset(t, name="packs")
    docs = [await rag.m.create_document(t, ds.id, name=f"d{i}.txt",
                                        source=Source(text=f"Lighthouse {i} stands on cliff {i} by the sea."))
            for i in range(6)]
    # Two packs go at once (flush slots) and wait at the gate; the four others wait behind them.
    assert await ingest_all(rag, waiting=4) == [None] * 6
    for d in docs:
        got = await status(rag, t, ds.id, d.id)
        assert got.status == DocumentStatus.COMPLETED and got.segments_done == got.segments_total == 1
    # 6 documents, 3 Embed calls: the four that waited went in one pack.
    assert len(rag.embedder.log) == 3 and sorted(len(texts) for _, texts in rag.embedder.log) == [1, 1, 4]
    async with rag.db.transaction(t) as conn:
        rows = await conn.fetch("SELECT document_id, position, content FROM segments WHERE dataset_id = $1::uuid",
                                ds.id)
    by_doc = {str(r["document_id"]): r for r in rows}
    assert len(rows) == 6 and all(f"Lighthouse {i} " in by_doc[d.id]["content"] for i, d in enumerate(docs))


async def test_tenants_never_share_a_pack_and_their_rows_stay_theirs(rag) -> None:
    a, b = tenant(), tenant()
    ds = {a: await rag.m.create_dataset(a, name="mine"), b: await rag.m.create_dataset(b, name="mine")}
    for i in range(4):
        for t in (a, b):
            await rag.m.create_document(t, ds[t].id, name=f"{i}.txt", source=Source(text=f"{t} secret number {i}."))
    assert await ingest_all(rag, waiting=6) == [None] * 8
    for called_for, texts in rag.embedder.log:  # each call: one tenant's texts, made on its behalf
        assert {text.split()[0] for text in texts} == {called_for}, (called_for, texts)
    assert len(rag.embedder.log) < 8  # and packs were made
    for t, other in ((a, b), (b, a)):
        async with rag.db.transaction(t) as conn:
            assert await conn.fetchval("SELECT count(*) FROM segments WHERE content LIKE $1", f"{t} %") == 4
            assert await conn.fetchval("SELECT count(*) FROM segments WHERE content LIKE $1", f"{other} %") == 0
    # Under no wall at all: every segment carries its own document's tenant and dataset.
    assert await rag.pool.fetchval(
        "SELECT count(*) FROM rag.segments s JOIN rag.documents d ON d.id = s.document_id "
        "WHERE s.tenant_id <> d.tenant_id OR s.dataset_id <> d.dataset_id") == 0


async def test_a_failing_or_stale_document_does_not_fail_its_pack_mates(rag) -> None:
    rag.embedder.poison = "POISON"
    t = tenant()
    ds = await rag.m.create_dataset(t, name="mixed")
    texts = ["Warm up the first slot.", "Warm up the second slot.", "Otters hold hands.", "POISON pill text.",
             "Seals nap on rocks.", "This one is edited while it waits.", "Puffins nest in burrows."]
    docs = [await rag.m.create_document(t, ds.id, name=f"d{i}.txt", source=Source(text=text))
            for i, text in enumerate(texts)]
    items, rag.queue.items = list(rag.queue.items), []
    # The two warm-up documents take both flush slots first; the five others wait behind them.
    tasks = [asyncio.create_task(rag.ingestor.ingest(item)) for item in items[:2]]
    await eventually(lambda: len(rag.embedder.log) == 2, "both flush slots taken", timeout_s=30)
    tasks += [asyncio.create_task(rag.ingestor.ingest(item)) for item in items[2:]]
    await eventually(lambda: len(rag.ingestor.batcher._waiting) >= 5, "5 batches waiting", timeout_s=30)
    # Edited while its batch waits: the edit bumps the revision, so that batch must not be written.
    await rag.m.update_document(t, ds.id, docs[5].id, source=Source(text="The new text of the edited one."))
    rag.embedder.gate.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(outcomes[3], PermanentError) and "refused" in str(outcomes[3])
    assert [o for i, o in enumerate(outcomes) if i != 3] == [None] * 6  # stale: stopped quietly
    got = {i: await status(rag, t, ds.id, d.id) for i, d in enumerate(docs)}
    assert got[3].status == DocumentStatus.ERROR and "refused" in got[3].error
    assert got[5].status == DocumentStatus.WAITING and got[5].revision == 2  # left for its new work item
    for i in (0, 1, 2, 4, 6):
        assert got[i].status == DocumentStatus.COMPLETED, (i, got[i].error)
    # The pack holding the poison was tried again one document at a time.
    packed = [texts_ for _, texts_ in rag.embedder.log if len(texts_) > 1]
    assert packed and any("POISON pill text." in x for x in packed)
    async with rag.db.transaction(t) as conn:
        assert await conn.fetchval("SELECT count(*) FROM segments WHERE document_id = $1::uuid", docs[5].id) == 0
        assert await conn.fetchval("SELECT count(*) FROM segments WHERE document_id = $1::uuid", docs[3].id) == 0
    await rag.drain()  # the edit's own work item
    assert (await status(rag, t, ds.id, docs[5].id)).status == DocumentStatus.COMPLETED


async def test_a_document_delivered_twice_at_once_and_again_leaves_each_position_once(rag) -> None:
    t = tenant()
    ds = await rag.m.create_dataset(t, name="twice", process_rule=ChunkingConfig(mode="custom", max_tokens=32,
                                                                                 chunk_overlap=0))
    text = "\n\n".join(f"Paragraph {i} is about lighthouse number {i} on the coast." for i in range(40))
    doc = await rag.m.create_document(t, ds.id, name="long.txt", source=Source(text=text))
    item = rag.queue.items[0]
    rag.queue.items.append(item)  # a redelivery while the first delivery still works on it
    assert await ingest_all(rag, calls=2) == [None, None]
    # Two batches of one document never share a statement, so the two deliveries' packs differ.
    assert all(len(set(texts)) == len(texts) for _, texts in rag.embedder.log)
    await rag.ingestor.ingest(item)  # a late duplicate after completion changes nothing
    done = await status(rag, t, ds.id, doc.id)
    assert done.status == DocumentStatus.COMPLETED and done.segments_total > 4  # several batches of 4
    async with rag.db.transaction(t) as conn:
        rows = await conn.fetch("SELECT position, count(*) AS n FROM segments WHERE document_id = $1::uuid "
                                "GROUP BY position ORDER BY position", doc.id)
    assert [r["position"] for r in rows] == list(range(1, done.segments_total + 1))
    assert all(r["n"] == 1 for r in rows)


async def test_an_error_every_document_would_meet_reaches_the_pack_without_retries(rag) -> None:
    """Inference down: each waiting document gets the retryable error from the pack's one call
    (and its work item is redelivered later), rather than one more failing call per document."""
    from loom_common.errors import Unavailable

    class Down(GatedEmbedder):
        async def embed(self, model, texts, *, tenant_id):
            self.log.append((tenant_id, list(texts)))
            await self.gate.wait()
            raise Unavailable("inference is down")

    rag.embedder = rag.ingestor.embedder = Down()
    t = tenant()
    ds = await rag.m.create_dataset(t, name="down")
    docs = [await rag.m.create_document(t, ds.id, name=f"d{i}.txt", source=Source(text=f"Walrus {i} naps."))
            for i in range(6)]
    outcomes = await ingest_all(rag, waiting=4)
    assert all(isinstance(o, Unavailable) for o in outcomes), outcomes
    assert sorted(len(texts) for _, texts in rag.embedder.log) == [1, 1, 4]  # three calls, none per document
    for d in docs:  # left as they were, for the redelivery
        assert (await status(rag, t, ds.id, d.id)).status == DocumentStatus.INDEXING
