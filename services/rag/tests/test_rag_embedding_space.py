"""One dataset, one vector space: a dataset records its embedding model, and vectors from any
other model (the static all-minilm:l6-v2-static next to all-minilm:l6-v2) are refused with a
clear EmbeddingMismatch, at ingestion, on a segment edit and at query time; datasets of
different models searched together each use their own model. Real Postgres+pgvector, test-only
embedders (these tests are about bookkeeping, not embedding quality)."""

from __future__ import annotations

import contextlib
import uuid

import pytest

from loom_common.errors import PermanentError
from loom_common.events import DocumentIngestRequested, DocumentStatus
from loom_common.testing import migrated_pool
from loom_rag.domain import embedding_space
from loom_rag.domain.errors import EmbeddingMismatch
from loom_rag.domain.models import RetrievalQuery, SearchMethod
from loom_rag.domain.ports import Embeddings
from loom_rag.ingest.pipeline import Ingestor
from loom_rag.ingest.tokenizer import WordPieceTokenizer
from loom_rag.management import Management, Source
from loom_rag.retrieval.rerank import LexicalOverlapReranker
from loom_rag.retrieval.service import Retriever
from loom_rag.storage import LocalFileStore
from loom_rag.store.tenancy import TenantDb

MINILM, STATIC = "all-minilm:l6-v2", "all-minilm:l6-v2-static"


def test_check_accepts_the_datasets_model_only():
    ok = Embeddings(MINILM + ":latest", 3, [[1.0, 0, 0]])
    assert embedding_space.check(MINILM, 3, ok, 1) == [[1.0, 0, 0]]
    with pytest.raises(EmbeddingMismatch, match="not comparable"):
        embedding_space.check(MINILM, 3, Embeddings(STATIC, 3, [[1.0, 0, 0]]), 1)
    with pytest.raises(EmbeddingMismatch, match="256-d"):
        embedding_space.check(MINILM, 384, Embeddings(MINILM, 256, [[0.0] * 256]), 1)
    with pytest.raises(EmbeddingMismatch, match="2 vectors for 1 texts"):
        embedding_space.check(MINILM, 3, Embeddings(MINILM, 3, [[1.0, 0, 0]] * 2), 1)


class TwoModels:
    """Test-only inference: each model its dimension; `answer_as` makes it answer with another
    model's name (a misrouted or swapped model), which the dataset must refuse."""

    dims = {MINILM: 384, STATIC: 256}

    def __init__(self, builders):
        self.inner = {m: builders.embedder(dim=d) for m, d in self.dims.items()}
        self.answer_as: str | None = None

    async def embed(self, model: str, texts: list[str], *, tenant_id: str) -> Embeddings:
        got = await self.inner[model].embed(model, texts, tenant_id=tenant_id)
        return Embeddings(self.answer_as or model, got.dimension, got.vectors)

    async def embedding_dimension(self, model: str) -> int:
        return self.dims[model]


class Queue:
    def __init__(self):
        self.items: list[DocumentIngestRequested] = []

    async def enqueue(self, **kw) -> None:
        self.items.append(DocumentIngestRequested(**kw))


class Progress:
    async def report(self, p) -> None:
        return None


@pytest.fixture
async def rag(database_url, tmp_path, builders):
    async with migrated_pool(database_url, "rag", "loom_rag.migrations") as pool:
        db = await TenantDb.open(pool)
        embedder, queue, tok = TwoModels(builders), Queue(), WordPieceTokenizer()
        files = LocalFileStore(tmp_path / "files")
        m = Management(db=db, files=files, queue=queue, embedder=embedder, catalog=embedder, tokenizer=tok,
                       default_embedding_model=MINILM)
        ingestor = Ingestor(db=db, files=files, embedder=embedder, tokenizer=tok, progress=Progress(), batch_size=4)

        async def drain():
            while queue.items:
                with contextlib.suppress(PermanentError):
                    await ingestor.ingest(queue.items.pop(0))

        yield m, drain, embedder, Retriever(db, embedder, LexicalOverlapReranker())


@pytest.mark.integration
async def test_vectors_of_another_model_are_refused_and_models_never_mix(rag) -> None:
    m, drain, embedder, retriever = rag
    t = f"t-{uuid.uuid4().hex[:8]}"
    mini = await m.create_dataset(t, name="minilm")
    fast = await m.create_dataset(t, name="bulk", embedding_model=STATIC)  # chosen per dataset
    assert (mini.embedding_model, mini.embedding_dim, fast.embedding_model, fast.embedding_dim) == (
        MINILM, 384, STATIC, 256)
    first, _ = [await m.create_document(t, ds.id, name="a.txt", source=Source(text="Harbour boats at dawn"))
                for ds in (mini, fast)]
    await drain()

    # Both datasets searched at once: each is queried with its own model, and both answer.
    hits = await retriever.retrieve(RetrievalQuery(t, [mini.id, fast.id], "harbour boats",
                                                   method=SearchMethod.VECTOR, top_k=10))
    assert {h.dataset_id for h in hits} == {mini.id, fast.id}

    # Inference now answers the MiniLM dataset with the static model's vectors: refused, clearly.
    embedder.answer_as = STATIC
    doc = await m.create_document(t, mini.id, name="b.txt", source=Source(text="More harbour boats"))
    await drain()
    failed = await m.get_document(t, mini.id, doc.id)
    assert failed.status == DocumentStatus.ERROR
    assert STATIC in failed.error and "not comparable" in failed.error
    seg = (await m.list_segments(t, mini.id, first.id)).items[0]
    with pytest.raises(EmbeddingMismatch, match="not comparable"):
        await m.update_segment(t, mini.id, seg.document_id, seg.id, content="edited")
    with pytest.raises(EmbeddingMismatch, match="not comparable"):
        await retriever.retrieve(RetrievalQuery(t, [mini.id], "boats", method=SearchMethod.VECTOR))
    embedder.answer_as = None
    # A query vector made by the static model, sent for the MiniLM dataset: refused too.
    with pytest.raises(EmbeddingMismatch):
        await retriever.retrieve(RetrievalQuery(t, [mini.id], "x", method=SearchMethod.VECTOR,
                                                query_vector=[0.1] * 384, query_embedding_model=STATIC))
