"""Ingestion, management and retrieval in-process against the REAL Postgres+pgvector, with the
test-only hashing embedder (these tests are about state, idempotency, isolation and SQL, not
about embedding quality; the real model is used by test_rag_service.py)."""

from __future__ import annotations

import contextlib
import uuid

import pytest

from loom_common.errors import PermanentError
from loom_common.events import DocumentIngestRequested, DocumentStatus
from loom_common.testing import migrated_pool
from loom_rag.domain.chunking import ChunkingConfig
from loom_rag.domain.errors import AlreadyExists, EmbeddingMismatch, InvalidArgument, NotFound
from loom_rag.domain.models import MetadataFilter, RetrievalQuery, SearchMethod
from loom_rag.ingest.pipeline import Ingestor
from loom_rag.ingest.tokenizer import WordPieceTokenizer
from loom_rag.management import Management, Source
from loom_rag.retrieval.rerank import LexicalOverlapReranker
from loom_rag.retrieval.service import Retriever
from loom_rag.storage import LocalFileStore
from loom_rag.store.tenancy import TenantDb

pytestmark = pytest.mark.integration


class Queue:
    def __init__(self):
        self.items: list[DocumentIngestRequested] = []

    async def enqueue(self, **kw) -> None:
        self.items.append(DocumentIngestRequested(**kw))


class Progress:
    def __init__(self):
        self.events = []

    async def report(self, p) -> None:
        self.events.append(p)


class Rag:
    def __init__(self, pool, tmp_path, embedder):
        self.queue, self.progress = Queue(), Progress()
        self.pool, self.tmp_path, self.embedder = pool, tmp_path, embedder

    async def setup(self):
        self.db = await TenantDb.open(self.pool)
        tok = WordPieceTokenizer()
        files = LocalFileStore(self.tmp_path / "files")
        self.m = Management(db=self.db, files=files, queue=self.queue, embedder=self.embedder, catalog=self.embedder,
                            tokenizer=tok, default_embedding_model="all-minilm:l6-v2")
        self.ingestor = Ingestor(db=self.db, files=files, embedder=self.embedder, tokenizer=tok,
                                 progress=self.progress, batch_size=4)
        self.retriever = Retriever(self.db, self.embedder, LexicalOverlapReranker())
        return self

    async def drain(self):
        """Work the queue as the consumer would (PermanentError = terminated work item)."""
        while self.queue.items:
            item = self.queue.items.pop(0)
            with contextlib.suppress(PermanentError):
                await self.ingestor.ingest(item)


@pytest.fixture
async def rag(database_url, tmp_path, builders):
    async with migrated_pool(database_url, "rag", "loom_rag.migrations") as pool:
        yield await Rag(pool, tmp_path, builders.embedder()).setup()


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


async def test_rls_role_is_in_use(rag) -> None:
    assert rag.db.rls_role == "loom_rag_tenant"
    async with rag.db.transaction("someone") as conn:
        assert await conn.fetchval("SELECT current_user") == "loom_rag_tenant"


async def test_each_file_type_goes_through_the_state_machine(rag, samples, expected_word) -> None:
    t = tenant()
    ds = await rag.m.create_dataset(t, name="all types")
    assert ds.embedding_dim == 384 and ds.embedding_model == "all-minilm:l6-v2"
    docs = {}
    for name, data in samples.items():
        doc = await rag.m.create_document(t, ds.id, name=name, source=Source(file=data), metadata={"kind": name[-4:]})
        assert doc.status == DocumentStatus.WAITING
        docs[name] = doc
    await rag.drain()
    for name, doc in docs.items():
        got = await rag.m.get_document(t, ds.id, doc.id)
        assert got.status == DocumentStatus.COMPLETED, (name, got.error)
        assert got.progress == 1.0 and got.segments_total == got.segments_done >= 1
        assert got.processing_started_at and got.completed_at
        seen = [e.status for e in rag.progress.events if e.document_id == doc.id]
        order = [DocumentStatus.PARSING, DocumentStatus.SPLITTING, DocumentStatus.INDEXING, DocumentStatus.COMPLETED]
        assert [s for s in dict.fromkeys(seen)] == order, seen
        hits = await rag.retriever.retrieve(RetrievalQuery(t, [ds.id], expected_word[name],
                                                           method=SearchMethod.FULL_TEXT, top_k=3))
        assert hits and hits[0].document_id == doc.id, name
        assert hits[0].document_name == name


async def test_bad_files_end_in_error_with_a_message(rag, builders) -> None:
    t = tenant()
    ds = await rag.m.create_dataset(t, name="bad")
    broken = await rag.m.create_document(t, ds.id, name="broken.pdf", source=Source(file=b"%PDF-1.7 garbage"))
    empty = await rag.m.create_document(t, ds.id, name="empty.docx", source=Source(file=builders.docx(["   "])))
    await rag.drain()
    for doc, text in ((broken, "PDF"), (empty, "no text")):
        got = await rag.m.get_document(t, ds.id, doc.id)
        assert got.status == DocumentStatus.ERROR and text in got.error, got.error
    with pytest.raises(InvalidArgument, match="unsupported file type"):
        await rag.m.create_document(t, ds.id, name="virus.exe", source=Source(file=b"MZ"))


async def test_crash_mid_document_then_redelivery_leaves_no_duplicates(rag, builders) -> None:
    t = tenant()
    ds = await rag.m.create_dataset(t, name="crash", process_rule=ChunkingConfig(mode="custom", max_tokens=32,
                                                                                  chunk_overlap=0))
    text = "\n\n".join(f"Paragraph {i} is about lighthouse number {i} on the coast." for i in range(40))
    doc = await rag.m.create_document(t, ds.id, name="long.txt", source=Source(text=text))
    item = rag.queue.items.pop()
    rag.ingestor.embedder = builders.embedder(fail_after_calls=3)  # dies after 3 batches were written
    with pytest.raises(RuntimeError):
        await rag.ingestor.ingest(item)
    mid = await rag.m.get_document(t, ds.id, doc.id)
    assert mid.status == DocumentStatus.INDEXING and 0 < mid.segments_done < mid.segments_total
    rag.ingestor.embedder = builders.embedder()
    await rag.ingestor.ingest(item)  # the redelivered work item
    done = await rag.m.get_document(t, ds.id, doc.id)
    assert done.status == DocumentStatus.COMPLETED
    async with rag.db.transaction(t) as conn:
        rows = await conn.fetch("SELECT position, count(*) FROM segments WHERE document_id = $1::uuid "
                                "GROUP BY position", doc.id)
    assert len(rows) == done.segments_total and all(r["count"] == 1 for r in rows)
    await rag.ingestor.ingest(item)  # a duplicate delivery after completion changes nothing
    page = await rag.m.list_segments(t, ds.id, doc.id, limit=100)
    assert page.total == done.segments_total


async def test_edit_reindex_disable_and_delete(rag) -> None:
    t = tenant()
    ds = await rag.m.create_dataset(t, name="crud")
    doc = await rag.m.create_document(t, ds.id, name="a.txt", source=Source(text="Otters hold hands while sleeping."))
    await rag.drain()
    q = RetrievalQuery(t, [ds.id], "otters", method=SearchMethod.FULL_TEXT)
    assert len(await rag.retriever.retrieve(q)) == 1
    # new content: new revision, old segments replaced
    doc2 = await rag.m.update_document(t, ds.id, doc.id, source=Source(text="Penguins slide on their bellies."))
    assert doc2.revision == 2 and doc2.status == DocumentStatus.WAITING
    await rag.drain()
    assert await rag.retriever.retrieve(q) == []
    assert len(await rag.retriever.retrieve(RetrievalQuery(t, [ds.id], "penguins", method=SearchMethod.FULL_TEXT)))
    # disabled documents are not retrieved
    await rag.m.set_documents_enabled(t, ds.id, [doc.id], False)
    assert await rag.retriever.retrieve(RetrievalQuery(t, [ds.id], "penguins", method=SearchMethod.HYBRID)) == []
    await rag.m.set_documents_enabled(t, ds.id, [doc.id], True)
    # segment edit re-embeds and re-indexes the text
    seg = (await rag.m.list_segments(t, ds.id, doc.id)).items[0]
    await rag.m.update_segment(t, ds.id, doc.id, seg.id, content="Walruses use tusks to climb.")
    q = RetrievalQuery(t, [ds.id], "Walruses use tusks to climb", method=SearchMethod.VECTOR)
    hits = await rag.retriever.retrieve(q)
    assert hits[0].segment_id == seg.id and hits[0].score > 0.99
    added = await rag.m.create_segments(t, ds.id, doc.id, [("Seals nap on rocks.", {"source": "manual"})])
    assert added[0].metadata["source"] == "manual"
    await rag.m.delete_segment(t, ds.id, doc.id, added[0].id)
    await rag.m.delete_document(t, ds.id, doc.id)
    with pytest.raises(NotFound):
        await rag.m.get_document(t, ds.id, doc.id)
    async with rag.db.transaction(t) as conn:
        assert await conn.fetchval("SELECT count(*) FROM segments WHERE document_id = $1::uuid", doc.id) == 0
    assert not list((rag.tmp_path / "files").rglob("a.txt"))
    await rag.m.delete_dataset(t, ds.id)
    with pytest.raises(NotFound):
        await rag.m.get_dataset(t, ds.id)


async def test_a_tenant_never_sees_another_tenants_chunks(rag) -> None:
    a, b = tenant(), tenant()
    ds_a = await rag.m.create_dataset(a, name="secrets")
    await rag.m.create_document(a, ds_a.id, name="s.txt", source=Source(text="The vault code is 7781 tangerine."))
    await rag.drain()
    ds_b = await rag.m.create_dataset(b, name="secrets")  # same name, other tenant: fine
    with pytest.raises(NotFound):  # naming the other tenant's dataset id does not help
        await rag.retriever.retrieve(RetrievalQuery(b, [ds_a.id], "vault code tangerine"))
    with pytest.raises(NotFound):
        await rag.m.list_documents(b, ds_a.id)
    assert await rag.retriever.retrieve(RetrievalQuery(b, [ds_b.id], "vault code tangerine")) == []
    assert len(await rag.retriever.retrieve(RetrievalQuery(a, [ds_a.id], "vault code tangerine"))) == 1
    # second wall: even SQL without a tenant filter sees only the current tenant's rows
    async with rag.db.transaction(b) as conn:
        assert await conn.fetchval("SELECT count(*) FROM segments WHERE content LIKE '%tangerine%'") == 0
    with pytest.raises(AlreadyExists):
        await rag.m.create_dataset(a, name="secrets")


async def test_filters_threshold_and_mismatched_query_vectors(rag) -> None:
    t = tenant()
    ds = await rag.m.create_dataset(t, name="filters")
    for i, lang in enumerate(["en", "fr", "en"]):
        await rag.m.create_document(t, ds.id, name=f"d{i}.txt", source=Source(text=f"Harbour report {i} boats"),
                                    metadata={"lang": lang, "year": 2020 + i, "tags": ["sea", lang]})
    await rag.drain()
    async def count(*filters, **kw) -> int:
        q = RetrievalQuery(t, [ds.id], "harbour boats", top_k=10, filters=list(filters), **kw)
        return len(await rag.retriever.retrieve(q))
    assert await count() == 3
    assert await count(MetadataFilter("lang", "eq", "en")) == 2
    assert await count(MetadataFilter("lang", "ne", "en")) == 1
    assert await count(MetadataFilter("lang", "in", ["fr", "de"])) == 1
    assert await count(MetadataFilter("tags", "contains", "fr")) == 1
    assert await count(MetadataFilter("year", "gt", 2020)) == 2
    assert await count(MetadataFilter("year", "lt", 2021), MetadataFilter("lang", "eq", "en")) == 1
    assert await count(MetadataFilter("document_name", "eq", "d1.txt")) == 1
    assert await count(score_threshold=1.0) <= 1
    with pytest.raises(EmbeddingMismatch):
        await rag.retriever.retrieve(RetrievalQuery(t, [ds.id], "x", method=SearchMethod.VECTOR,
                                                    query_vector=[0.1] * 768))
    with pytest.raises(EmbeddingMismatch):
        await rag.retriever.retrieve(RetrievalQuery(t, [ds.id], "x", method=SearchMethod.VECTOR,
                                                    query_vector=[0.1] * 384, query_embedding_model="other"))
    with pytest.raises(InvalidArgument, match="top_k"):
        await rag.retriever.retrieve(RetrievalQuery(t, [ds.id], "x", top_k=0))
