"""tools.v1 servicer (skeleton: the registry arrives with the tools issue)."""

from __future__ import annotations

import grpc

from loom.tools.v1 import tools_pb2, tools_pb2_grpc


class ToolsServicer(tools_pb2_grpc.ToolsServicer):
    async def ListTools(self, request, context):
        return tools_pb2.ListToolsResponse(tools=[])

    async def Invoke(self, request, context):
        await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown tool {request.tool!r}")
