"""Composition root of the tools service: the toolbox is a dependency of the runtime's
lifespan, built once the pool exists and before the first call is served, closed at stop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from loom.tools.v1 import tools_pb2_grpc
from loom_common.runtime import ServiceRuntime
from loom_tools import __version__
from loom_tools.api.grpc_service import ToolsServicer
from loom_tools.settings import ToolsSettings
from loom_tools.toolbox import Toolbox, build_toolbox


def build(settings: ToolsSettings | None = None) -> ServiceRuntime:
    settings = settings or ToolsSettings()
    rt = ServiceRuntime("tools", settings, version=__version__, schema="tools",
                        migrations="loom_tools.migrations", grpc_port=settings.grpc_port)

    @contextlib.asynccontextmanager
    async def open_toolbox(rt: ServiceRuntime) -> AsyncIterator[Toolbox]:
        toolbox = build_toolbox(settings, rt.pool)
        try:
            yield toolbox
        finally:
            await toolbox.close()

    toolbox = rt.dependency("toolbox", open_toolbox)
    # Servicers are registered once the dependencies are built (ServiceRuntime.start).
    rt.add_grpc_service(lambda server: tools_pb2_grpc.add_ToolsServicer_to_server(
        ToolsServicer(toolbox.get()), server))
    return rt
