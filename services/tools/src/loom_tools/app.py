"""Composition root of the tools service: the toolbox is built once the pool exists."""

from __future__ import annotations

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
    built: dict[str, Toolbox] = {}

    async def start(rt: ServiceRuntime) -> None:
        built["toolbox"] = build_toolbox(settings, rt.pool)

    async def stop(rt: ServiceRuntime) -> None:
        if "toolbox" in built:
            await built["toolbox"].close()

    rt.on_start(start)
    rt.on_stop(stop)
    # Servicers are registered after the start hooks ran, so the toolbox exists by then.
    rt.add_grpc_service(lambda server: tools_pb2_grpc.add_ToolsServicer_to_server(
        ToolsServicer(built["toolbox"]), server))
    return rt
