"""Composition root of the orchestrator: the runs consumer, the stop listener, the gRPC
clients of inference, rag and tools, the file store, Postgres, metrics, the backlog watcher and
the human-input timer.

The clients are dependencies of the runtime's lifespan (loom_common.runtime): made on the
running loop (grpc.aio channels bind to it) before the runs consumer fetches its first
request, closed after it drained."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from loom_common import blobs
from loom_common.runtime import ServiceRuntime, made
from loom_orchestrator import __version__, metrics
from loom_orchestrator.clients.files import StoredDocuments
from loom_orchestrator.clients.inference import InferenceClient
from loom_orchestrator.clients.rag import RagClient
from loom_orchestrator.clients.tools import ToolsClient
from loom_orchestrator.engine.context import Services
from loom_orchestrator.handlers import build_router, runs_consumer
from loom_orchestrator.human_inputs import PgHumanInputs
from loom_orchestrator.human_timer import run_timer
from loom_orchestrator.settings import OrchestratorSettings
from loom_orchestrator.worker import Worker


def build(settings: OrchestratorSettings | None = None) -> ServiceRuntime:
    settings = settings or OrchestratorSettings()
    rt = ServiceRuntime("orchestrator", settings, version=__version__, schema="orchestrator",
                        migrations="loom_orchestrator.migrations")
    documents = StoredDocuments(blobs.open_store(settings),
                                max_concurrent=settings.max_concurrent_extractions)

    @contextlib.asynccontextmanager
    async def open_services(rt: ServiceRuntime) -> AsyncIterator[Services]:
        model = InferenceClient(settings.inference_addr, settings.model_timeout_s)
        retriever, tools = RagClient(settings.rag_addr), ToolsClient(settings.tools_addr)
        try:
            yield Services(model=model, retriever=retriever, tools=tools, documents=documents)
        finally:
            for client in (tools, retriever, model):
                with contextlib.suppress(Exception):
                    await client.close()

    pool = rt.dependency("pool", made(lambda rt: rt.pool))  # the runtime's own, closed by it
    services = rt.dependency("services", open_services)
    consumer = runs_consumer(settings.runs_ack_wait_s)
    worker = Worker(rt.broker, pool.get, settings, services.get, consumer)
    rt.broker.include_router(build_router(worker, max_workers=settings.max_concurrent_runs))
    rt.consumer(consumer, backlog=metrics.QUEUE_BACKLOG, every_s=settings.backlog_every_s)

    async def stops_listening(rt: ServiceRuntime) -> None:
        worker.stops.listening()  # background steps start once the broker fetches: the stop subscription is live

    rt.background("stops-listening", stops_listening)
    rt.background("human-input-timer", lambda rt: run_timer(lambda: PgHumanInputs(pool.get()), rt.broker,
                                                            settings.human_input_timer_s))
    return rt
