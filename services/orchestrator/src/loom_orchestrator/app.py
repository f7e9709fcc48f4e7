"""Composition root of the orchestrator: the runs consumer, the stop listener, the gRPC
clients of inference, rag and tools, the file store, Postgres, metrics, the backlog watcher and
the human-input timer."""

from __future__ import annotations

import asyncio
import contextlib

from loom_common import blobs
from loom_common.runtime import ServiceRuntime
from loom_orchestrator import __version__, metrics
from loom_orchestrator.clients.files import StoredDocuments
from loom_orchestrator.clients.inference import InferenceClient
from loom_orchestrator.clients.rag import RagClient
from loom_orchestrator.clients.tools import ToolsClient
from loom_orchestrator.engine.context import Services
from loom_orchestrator.handlers import align_consumer, build_router, runs_consumer, watch_backlog
from loom_orchestrator.human_inputs import PgHumanInputs
from loom_orchestrator.human_timer import run_timer
from loom_orchestrator.settings import OrchestratorSettings
from loom_orchestrator.worker import Worker


def build(settings: OrchestratorSettings | None = None) -> ServiceRuntime:
    settings = settings or OrchestratorSettings()
    rt = ServiceRuntime("orchestrator", settings, version=__version__, schema="orchestrator",
                        migrations="loom_orchestrator.migrations")
    clients: dict = {}
    documents = StoredDocuments(blobs.open_store(settings),
                                max_concurrent=settings.max_concurrent_extractions)

    def services() -> Services:
        if not clients:  # grpc.aio channels bind to the running loop: made on first use
            clients.update(model=InferenceClient(settings.inference_addr, settings.model_timeout_s),
                           retriever=RagClient(settings.rag_addr), tools=ToolsClient(settings.tools_addr))
        return Services(**clients, documents=documents)

    def pool():
        assert rt.pool is not None, "the pool exists once the runtime started"
        return rt.pool

    worker = Worker(rt.broker, pool, settings, services, runs_consumer(settings.runs_ack_wait_s))
    rt.broker.include_router(build_router(worker, max_workers=settings.max_concurrent_runs))
    tasks: list[asyncio.Task] = []

    @rt.on_start
    async def _start(rt: ServiceRuntime) -> None:
        await align_consumer(rt.broker, settings.runs_ack_wait_s)
        worker.stops.listening()  # the broker started: the stop subscription is live
        tasks.append(asyncio.create_task(watch_backlog(rt.broker, settings.backlog_every_s, metrics.QUEUE_BACKLOG)))
        tasks.append(asyncio.create_task(run_timer(lambda: PgHumanInputs(pool()), rt.broker,
                                                   settings.human_input_timer_s)))

    @rt.on_stop
    async def _stop(rt: ServiceRuntime) -> None:
        for task in tasks:
            task.cancel()
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.close()

    return rt
