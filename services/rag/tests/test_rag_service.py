"""The rag service as a real process, against the REAL inference process (all-minilm:l6-v2
embeddings), NATS JetStream and Postgres+pgvector: every file type through the gRPC API and the
work queue with progress on the bus, hybrid retrieval finding an exact code vector search
misses, typed errors, and a worker SIGKILLed mid-document whose redelivered work item leaves no
duplicate segments."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import asyncpg
import grpc
import httpx
import nats
import pytest

from loom.rag.v1 import rag_pb2 as pb
from loom.rag.v1 import rag_pb2_grpc
from loom_common import bus
from loom_common.devstack import infra
from loom_common.testing import ServiceProcess, service_channel

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Every rag process of these tests shares the durable consumer, so they share its ack_wait.
RAG_ENV = {"LOOM_RAG_INGEST_ACK_WAIT_S": "4", "LOOM_RAG_EMBED_BATCH_SIZE": "16"}


@pytest.fixture(scope="module")
def inference_addr(nats_url, database_url, tmp_path_factory):
    home = tmp_path_factory.mktemp("inference-home")
    http_port, grpc_port = infra.free_port(), infra.free_port()
    env = {"LOOM_NATS_URL": nats_url, "LOOM_DATABASE_URL": database_url, "LOOM_HOME": str(home),
           "LOOM_INFERENCE_HTTP_PORT": str(http_port), "LOOM_INFERENCE_GRPC_PORT": str(grpc_port),
           "PYTHONUNBUFFERED": "1"}
    proc = ServiceProcess("inference", env, http_port, home / "inference.log").start(timeout_s=120)
    yield f"127.0.0.1:{grpc_port}"
    proc.stop()


def start_rag(run_service, inference_addr: str, grpc_port: int | None = None):
    port = grpc_port or infra.free_port()
    proc = run_service("rag", env={**RAG_ENV, "LOOM_RAG_GRPC_PORT": str(port), "LOOM_INFERENCE_ADDR": inference_addr})
    return proc, port


class Client:
    def __init__(self, port: int):
        self.channel = service_channel(f"127.0.0.1:{port}")
        self.ds = rag_pb2_grpc.DatasetsStub(self.channel)
        self.rt = rag_pb2_grpc.RetrievalStub(self.channel)

    async def wait_done(self, tenant: str, dataset_id: str, doc_id: str, timeout_s: float = 90.0) -> pb.Document:
        """Waits for the document's end. The limit counts from its last progress, not from the
        start: on a loaded machine a long document indexes slowly but steadily, and only a
        document that stops moving for `timeout_s` is a hang."""
        deadline, seen = time.monotonic() + timeout_s, None
        while True:
            doc = await self.ds.GetDocument(pb.DocumentRef(tenant_id=tenant, dataset_id=dataset_id, document_id=doc_id))
            if doc.indexing_status in ("completed", "error") or time.monotonic() > deadline:
                return doc
            if (doc.indexing_status, doc.completed_segments) != seen:
                seen, deadline = (doc.indexing_status, doc.completed_segments), time.monotonic() + timeout_s
            await asyncio.sleep(0.1)


async def progress_events(nats_url: str, doc_id: str) -> list[dict]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(bus.document_events(doc_id), ordered_consumer=True)
        out = []
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except nats.errors.TimeoutError:
                return out
            out.append(json.loads(msg.data))
    finally:
        await nc.close()


async def test_every_file_type_and_hybrid_retrieval_with_real_embeddings(run_service, inference_addr, nats_url,
                                                                         samples, expected_word) -> None:
    proc, port = start_rag(run_service, inference_addr)
    c = Client(port)
    t = f"t-{uuid.uuid4().hex[:8]}"
    ds = await c.ds.CreateDataset(pb.CreateDatasetRequest(tenant_id=t, name="everything"))
    assert ds.embedding_model == "all-minilm:l6-v2" and ds.embedding_dimension == 384  # from ListModels

    docs = {}
    for name, data in samples.items():
        doc = await c.ds.CreateDocument(pb.CreateDocumentRequest(tenant_id=t, dataset_id=ds.id, name=name, file=data))
        assert doc.indexing_status == "waiting"
        docs[name] = doc
    for name, doc in docs.items():
        done = await c.wait_done(t, ds.id, doc.id)
        assert done.indexing_status == "completed", (name, done.error)
        assert done.completed_segments == done.total_segments >= 1
        res = await c.rt.Retrieve(pb.RetrieveRequest(tenant_id=t, dataset_ids=[ds.id], query=expected_word[name],
                                                     method=pb.SEARCH_METHOD_HYBRID, top_k=1))
        assert res.chunks[0].document_id == doc.id, name
    events = await progress_events(nats_url, docs["guide.pdf"].id)
    statuses = list(dict.fromkeys(e["status"] for e in events))
    assert statuses == ["parsing", "splitting", "indexing", "completed"], statuses
    assert events[-1]["progress"] == 1.0

    # A code vector search cannot tell from its look-alikes; full text matches it exactly.
    target = "Shipping note: parcel ZX-4471-Q left the warehouse on Monday with twelve ceramic bowls packed in straw."
    codes = ["AB-1290-K", "QR-9921-T", "MV-3310-B", "KP-7702-H", "TY-5518-N", "LD-2046-W", "HC-8833-F", "RS-6127-J",
             "PW-4018-D", "GE-7364-U", "NB-2590-C", "FJ-8147-S"]
    texts = [target] + [f"Product code {code} is listed in the catalogue of spare parts." for code in codes]
    kw = await c.ds.CreateDataset(pb.CreateDatasetRequest(tenant_id=t, name="codes"))
    ids = [(await c.ds.CreateDocument(pb.CreateDocumentRequest(tenant_id=t, dataset_id=kw.id, name=f"n{i}.txt",
                                                               text=text))).id for i, text in enumerate(texts)]
    for doc_id in ids:
        assert (await c.wait_done(t, kw.id, doc_id)).indexing_status == "completed"

    async def top(method, k=3):
        res = await c.rt.Retrieve(pb.RetrieveRequest(tenant_id=t, dataset_ids=[kw.id], query="ZX-4471-Q",
                                                     method=method, top_k=k))
        return [ch.content for ch in res.chunks]
    assert target not in await top(pb.SEARCH_METHOD_VECTOR)
    assert (await top(pb.SEARCH_METHOD_FULL_TEXT))[0] == target
    assert (await top(pb.SEARCH_METHOD_HYBRID, 1)) == [target]

    # typed errors
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.rt.Retrieve(pb.RetrieveRequest(tenant_id=t, dataset_ids=[kw.id], query="x",
                                               method=pb.SEARCH_METHOD_VECTOR, query_vector=[0.1] * 768))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.rt.Retrieve(pb.RetrieveRequest(tenant_id="someone-else", dataset_ids=[kw.id], query="x"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.ds.CreateDocument(pb.CreateDocumentRequest(tenant_id=t, dataset_id=kw.id, name="x.exe", file=b"MZ"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "name" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.ds.GetDataset(pb.GetDatasetRequest(tenant_id=t, dataset_id="not-a-uuid"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "dataset_id" in err.value.details()

    metrics = httpx.get(proc.base_url + "/metrics").text
    assert "loom_rag_documents_ingested_total" in metrics and "loom_rag_retrieval_seconds_bucket" in metrics
    assert "loom_rag_ingest_queue_backlog" in metrics and "loom_rag_chunks_indexed_total" in metrics
    await c.channel.close()


async def test_worker_killed_mid_document_reindexes_without_duplicates(run_service, inference_addr,
                                                                       database_url, tmp_path: Path) -> None:
    proc, port = start_rag(run_service, inference_addr)
    c = Client(port)
    t = f"t-{uuid.uuid4().hex[:8]}"
    ds = await c.ds.CreateDataset(pb.CreateDatasetRequest(
        tenant_id=t, name="long", process_rule=pb.ProcessRule(mode="custom", max_tokens=24, chunk_overlap=0)))
    text = "\n\n".join(f"Entry {i}: the lighthouse keeper logged wind from the north-west at force {i % 9}."
                       for i in range(800))
    doc = await c.ds.CreateDocument(pb.CreateDocumentRequest(tenant_id=t, dataset_id=ds.id, name="log.txt",
                                                             text=text))
    ref = pb.DocumentRef(tenant_id=t, dataset_id=ds.id, document_id=doc.id)
    deadline = time.monotonic() + 300  # a hang guard only: a loaded machine starts slowly
    while True:
        now = await c.ds.GetDocument(ref)
        if now.indexing_status == "indexing" and now.completed_segments >= 32:
            break
        assert now.indexing_status != "completed" and time.monotonic() < deadline, now
        await asyncio.sleep(0.02)
    proc.kill()  # SIGKILL: no drain, the message stays unacknowledged
    await c.channel.close()

    _, port2 = start_rag(run_service, inference_addr)
    c2 = Client(port2)
    done = await c2.wait_done(t, ds.id, doc.id, timeout_s=120)
    assert done.indexing_status == "completed", done.error
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT position, count(*) AS n FROM rag.segments WHERE document_id = $1::uuid "
                                "GROUP BY position", uuid.UUID(doc.id))
    finally:
        await conn.close()
    assert len(rows) == done.total_segments and all(r["n"] == 1 for r in rows)
    assert done.total_segments > 100
    await c2.channel.close()
