"""Composition root of the inference service: router, gRPC servicer, the 11434 HTTP APIs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from loom.inference.v1 import inference_pb2_grpc
from loom_common.runtime import ServiceRuntime
from loom_inference import __version__
from loom_inference.api.access import check_bind
from loom_inference.api.grpc_service import InferenceServicer
from loom_inference.api.http import mount
from loom_inference.models import ModelManager
from loom_inference.router.factory import BUNDLED_CHAT, BUNDLED_EMBED, build_router, remote_builder
from loom_inference.settings import InferenceSettings


def build(settings: InferenceSettings | None = None) -> ServiceRuntime:
    settings = settings or InferenceSettings()
    # Before anything binds: an open model API is never put on the network by accident.
    check_bind(settings.http_host, settings.api_token.get_secret_value() if settings.api_token else None)
    # The engine keeps nothing in Postgres or on the bus (its store is files: store.py), so
    # standalone it simply starts without them; in the platform it runs as every service does.
    platform = not settings.standalone
    rt = ServiceRuntime("inference", settings, version=__version__, schema="inference" if platform else None,
                        migrations="loom_inference.migrations" if platform else None,
                        grpc_port=settings.grpc_port, use_nats=platform)
    router = build_router(settings)
    manager = ModelManager(router, settings)  # one for both faces: /api/pull and the PullModel RPC
    rt.add_grpc_service(lambda server: inference_pb2_grpc.add_InferenceServicer_to_server(
        InferenceServicer(router, remote_builder(settings), manager), server))
    mount(rt.http, router, manager, settings)

    @contextlib.asynccontextmanager
    async def models(rt: ServiceRuntime) -> AsyncIterator[None]:
        # The bundled models load in the background, the chat model first, and the service is
        # ready once they are: a request during the load would stall anyway (importing torch
        # for the embedding model holds the GIL for seconds: a chat sent then waited ~5 s).
        loading: asyncio.Task | None = None
        if settings.load_models_at_start:
            loading = asyncio.create_task(router.start([BUNDLED_CHAT, BUNDLED_EMBED]))

            async def models_loaded() -> bool:
                return loading.done()

            rt.readiness.add("models", models_loaded)
        try:
            yield
        finally:
            if loading is not None:
                loading.cancel()
            await router.close()

    # The one dependency of the runtime's lifespan (loom_common.runtime): the router's models,
    # closed after gRPC finished its open calls. Standalone there is no pool and no broker.
    rt.dependency("models", models)
    return rt
