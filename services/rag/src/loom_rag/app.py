"""Composition root of the RAG service: settings -> adapters -> domain services -> transports.

    gRPC  rag.v1.Retrieval (Retrieve) and rag.v1.Datasets (management)
    NATS  consumer rag-ingest on documents.ingest; progress on each document's event subject
    HTTP  /healthz /readyz /metrics (runtime's admin router)
"""

from __future__ import annotations

from loom.rag.v1 import rag_pb2_grpc
from loom_common.runtime import ServiceRuntime, made
from loom_rag import __version__, metrics
from loom_rag.api.bus import BusIngestQueue, BusProgressSink, consumer, register_ingest_consumer
from loom_rag.api.grpc_service import DatasetsServicer, RetrievalServicer
from loom_rag.clients.inference import InferenceClient
from loom_rag.ingest.isolated import ParseLimits
from loom_rag.ingest.pipeline import Ingestor
from loom_rag.ingest.tokenizer import WordPieceTokenizer
from loom_rag.management import Management
from loom_rag.retrieval.index_keeper import IndexKeeper
from loom_rag.retrieval.rerank import LexicalOverlapReranker
from loom_rag.retrieval.service import Retriever
from loom_rag.settings import RagSettings
from loom_rag.storage import open_file_store
from loom_rag.store.tenancy import TenantDb


def build(settings: RagSettings | None = None) -> ServiceRuntime:
    settings = settings or RagSettings()
    rt = ServiceRuntime("rag", settings, version=__version__, schema="rag",
                        migrations="loom_rag.migrations", grpc_port=settings.grpc_port)
    files = open_file_store(settings)
    tokenizer = WordPieceTokenizer()

    # The lifespan's dependencies, built in this order once the pool and NATS are up, before
    # the ingest consumer fetches or a gRPC call is served; closed in reverse at stop.
    inference = rt.dependency("inference", made(
        lambda rt: InferenceClient(settings.inference_addr, timeout_s=settings.embed_timeout_s), InferenceClient.close))
    db = rt.dependency("db", made(lambda rt: TenantDb.open(rt.pool)))
    ingestor = rt.dependency("ingestor", made(lambda rt: Ingestor(
        db=db.get(), files=files, embedder=inference.get(), tokenizer=tokenizer, progress=BusProgressSink(rt.broker),
        batch_size=settings.embed_batch_size, parse_concurrency=settings.parse_concurrency,
        pack_chunks=settings.embed_pack_chunks, heartbeat_every_s=settings.ingest_ack_wait_s / 3,
        parse_limits=ParseLimits(memory_mb=settings.parse_memory_mb, cpu_s=settings.parse_cpu_s,
                                 wall_s=settings.parse_wall_s, max_text_chars=settings.parse_max_text_chars,
                                 max_unzipped_bytes=settings.parse_max_unzipped_mb * 2**20)), Ingestor.close))
    retriever = rt.dependency("retriever", made(lambda rt: Retriever(
        db.get(), inference.get(), LexicalOverlapReranker(), ef_search=settings.hnsw_ef_search,
        candidates_per_method=settings.candidates_per_method, reads=rt.reads, policy=settings.index_policy())))
    management = rt.dependency("management", made(lambda rt: Management(
        db=db.get(), files=files, queue=BusIngestQueue(rt.broker), embedder=inference.get(), catalog=inference.get(),
        tokenizer=tokenizer, default_embedding_model=settings.default_embedding_model,
        max_file_bytes=settings.max_file_bytes)))

    assert rt.broker is not None
    rt.consumer(consumer(settings.ingest_ack_wait_s), backlog=metrics.QUEUE_BACKLOG, every_s=settings.backlog_poll_s)
    register_ingest_consumer(rt.broker, ingestor, ack_wait_s=settings.ingest_ack_wait_s,
                             max_workers=settings.ingest_concurrency)
    if settings.index_keeper_poll_s > 0:  # per-dataset HNSW indexes, built off the request path
        rt.background("index-keeper", lambda rt: IndexKeeper(rt.pool, settings.index_policy(),
                                                             poll_s=settings.index_keeper_poll_s).run())
    rt.add_grpc_service(lambda server: rag_pb2_grpc.add_RetrievalServicer_to_server(
        RetrievalServicer(retriever.get()), server))
    rt.add_grpc_service(lambda server: rag_pb2_grpc.add_DatasetsServicer_to_server(
        DatasetsServicer(management.get()), server))
    return rt
