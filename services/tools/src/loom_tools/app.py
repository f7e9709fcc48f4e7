"""Composition root of the tools service."""

from __future__ import annotations

from loom.tools.v1 import tools_pb2_grpc
from loom_common.runtime import ServiceRuntime
from loom_tools import __version__
from loom_tools.api.grpc_service import ToolsServicer
from loom_tools.settings import ToolsSettings


def build(settings: ToolsSettings | None = None) -> ServiceRuntime:
    settings = settings or ToolsSettings()
    rt = ServiceRuntime("tools", settings, version=__version__, schema="tools",
                        migrations="loom_tools.migrations", grpc_port=settings.grpc_port)
    rt.add_grpc_service(lambda server: tools_pb2_grpc.add_ToolsServicer_to_server(ToolsServicer(), server))
    return rt
