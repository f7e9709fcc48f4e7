"""Composition root of the RAG service."""

from __future__ import annotations

from loom.rag.v1 import rag_pb2_grpc
from loom_common.runtime import ServiceRuntime
from loom_rag import __version__
from loom_rag.api.grpc_service import RetrievalServicer
from loom_rag.settings import RagSettings


def build(settings: RagSettings | None = None) -> ServiceRuntime:
    settings = settings or RagSettings()
    rt = ServiceRuntime("rag", settings, version=__version__, schema="rag",
                        migrations="loom_rag.migrations", grpc_port=settings.grpc_port)
    rt.add_grpc_service(lambda server: rag_pb2_grpc.add_RetrievalServicer_to_server(RetrievalServicer(), server))
    return rt
