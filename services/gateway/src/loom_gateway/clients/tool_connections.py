"""tools.v1 client for the SQL connections a template installs (AddConnection, DeleteTool).

The template installer is its only user and installs are rare, so the channel lives for one
install (`async with`), not the process. Writes: not retried by the client."""

from __future__ import annotations

from loom.tools.v1 import tools_pb2 as pb
from loom.tools.v1 import tools_pb2_grpc as pb_grpc
from loom_common.clients.base import NO_RETRY, ServiceClient
from loom_common.errors import AlreadyExists, LoomError
from loom_gateway.clients.errors import api_error


class ToolConnections(ServiceClient):
    service = "tools"

    def __init__(self, addr: str, timeout_s: float = 30.0) -> None:
        super().__init__(addr, timeout_s=timeout_s, retry=NO_RETRY)

    async def __aenter__(self) -> ToolConnections:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def add_sqlite(self, tenant_id: str, name: str, path: str, description: str) -> bool:
        """Register the connection (tools `<name>.query`, `<name>.schema`); False if the workspace
        has one of that name already (it is kept: it may be the operator's own)."""
        try:
            await self.unary(pb_grpc.ToolsStub(self.channel).AddConnection, pb.AddConnectionRequest(
                tenant_id=tenant_id, name=name, driver="sqlite", path=path, description=description),
                tenant_id=tenant_id)
        except AlreadyExists:
            return False
        except LoomError as err:
            raise api_error(err, "tools") from err
        return True

    async def delete(self, tenant_id: str, name: str) -> None:
        try:
            await self.unary(pb_grpc.ToolsStub(self.channel).DeleteTool,
                             pb.DeleteToolRequest(tenant_id=tenant_id, name=f"{name}.*"), tenant_id=tenant_id)
        except LoomError as err:
            raise api_error(err, "tools") from err
