"""tools.v1 client for the SQL connections a template installs (AddConnection, DeleteTool).

The template installer is its only user and installs are rare, so the channel lives for one
install (`async with`), not the process."""

from __future__ import annotations

import grpc

from loom.tools.v1 import tools_pb2 as pb
from loom.tools.v1 import tools_pb2_grpc as pb_grpc
from loom_common.grpc_client import call_metadata, channel
from loom_gateway.clients.errors import translate
from loom_gateway.domain.errors import Conflict


class ToolConnections:
    def __init__(self, addr: str, timeout_s: float = 30.0) -> None:
        self.addr, self.timeout_s = addr, timeout_s
        self._channel: grpc.aio.Channel | None = None

    async def __aenter__(self) -> ToolConnections:
        self._channel = channel(self.addr)
        self._stub = pb_grpc.ToolsStub(self._channel)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def add_sqlite(self, tenant_id: str, name: str, path: str, description: str) -> bool:
        """Register the connection (tools `<name>.query`, `<name>.schema`); False if the workspace
        has one of that name already (it is kept: it may be the operator's own)."""
        try:
            await self._stub.AddConnection(pb.AddConnectionRequest(
                tenant_id=tenant_id, name=name, driver="sqlite", path=path, description=description),
                timeout=self.timeout_s, metadata=call_metadata(tenant_id=tenant_id))
        except grpc.aio.AioRpcError as exc:
            error = translate(exc, "tools")
            if isinstance(error, Conflict):
                return False
            raise error from exc
        return True

    async def delete(self, tenant_id: str, name: str) -> None:
        try:
            await self._stub.DeleteTool(pb.DeleteToolRequest(tenant_id=tenant_id, name=f"{name}.*"),
                                        timeout=self.timeout_s, metadata=call_metadata(tenant_id=tenant_id))
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, "tools") from exc
