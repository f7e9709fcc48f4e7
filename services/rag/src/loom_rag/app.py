"""Composition root of the RAG service: settings -> adapters -> domain services -> transports.

    gRPC  rag.v1.Retrieval (Retrieve) and rag.v1.Datasets (management)
    NATS  consumer rag-ingest on documents.ingest; progress on each document's event subject
    HTTP  /healthz /readyz /metrics (runtime's admin router)
"""

from __future__ import annotations

import asyncio
import contextlib

from loom.rag.v1 import rag_pb2_grpc
from loom_common.runtime import ServiceRuntime
from loom_rag import __version__
from loom_rag.api.bus import (
    BusIngestQueue,
    BusProgressSink,
    align_consumer,
    register_ingest_consumer,
    watch_backlog,
)
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


class _Late:
    """The domain services, made once the pool is up (in the on_start hook)."""

    retriever: Retriever
    management: Management


def build(settings: RagSettings | None = None) -> ServiceRuntime:
    settings = settings or RagSettings()
    rt = ServiceRuntime("rag", settings, version=__version__, schema="rag",
                        migrations="loom_rag.migrations", grpc_port=settings.grpc_port)
    inference = InferenceClient(settings.inference_addr, timeout_s=settings.embed_timeout_s)
    files = open_file_store(settings)
    tokenizer = WordPieceTokenizer()
    ingestor_ref: list[Ingestor] = []
    tasks: list[asyncio.Task] = []

    assert rt.broker is not None
    register_ingest_consumer(rt.broker, ingestor_ref, ack_wait_s=settings.ingest_ack_wait_s,
                             max_workers=settings.ingest_concurrency)

    late = _Late()

    @rt.on_start
    async def wire(rt: ServiceRuntime) -> None:
        await align_consumer(rt.broker, settings.ingest_ack_wait_s)
        db = await TenantDb.open(rt.pool)
        ingestor_ref.append(Ingestor(db=db, files=files, embedder=inference, tokenizer=tokenizer,
                                     progress=BusProgressSink(rt.broker), batch_size=settings.embed_batch_size,
                                     parse_limits=ParseLimits(
                                         memory_mb=settings.parse_memory_mb, cpu_s=settings.parse_cpu_s,
                                         wall_s=settings.parse_wall_s, max_text_chars=settings.parse_max_text_chars,
                                         max_unzipped_bytes=settings.parse_max_unzipped_mb * 2**20)))
        late.retriever = Retriever(db, inference, LexicalOverlapReranker(), ef_search=settings.hnsw_ef_search,
                                   candidates_per_method=settings.candidates_per_method, reads=rt.reads,
                                   policy=settings.index_policy())
        late.management = Management(db=db, files=files, queue=BusIngestQueue(rt.broker), embedder=inference,
                                     catalog=inference, tokenizer=tokenizer,
                                     default_embedding_model=settings.default_embedding_model,
                                     max_file_bytes=settings.max_file_bytes)
        tasks.append(asyncio.create_task(watch_backlog(rt.broker, settings.backlog_poll_s)))
        if settings.index_keeper_poll_s > 0:  # per-dataset HNSW indexes, built off the request path
            keeper = IndexKeeper(rt.pool, settings.index_policy(), poll_s=settings.index_keeper_poll_s)
            tasks.append(asyncio.create_task(keeper.run()))

    @rt.on_stop
    async def unwire(rt: ServiceRuntime) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await inference.close()

    # The runtime registers servicers after the on_start hooks ran, so `late` is filled by then.
    rt.add_grpc_service(lambda server: rag_pb2_grpc.add_RetrievalServicer_to_server(
        RetrievalServicer(late.retriever), server))
    rt.add_grpc_service(lambda server: rag_pb2_grpc.add_DatasetsServicer_to_server(
        DatasetsServicer(late.management), server))
    return rt
