"""The SQL connections a template installs (tools.v1 AddConnection, DeleteTool), over the shared
tools client (loom_common.clients.tools; writes, so not retried).

The template installer is its only user and installs are rare, so the channel lives for one
install (`async with`), not the process."""

from __future__ import annotations

from loom.tools.v1 import tools_pb2 as pb
from loom_common.clients import tools
from loom_common.errors import AlreadyExists, LoomError
from loom_gateway.clients.errors import api_error


class ToolConnections:
    def __init__(self, addr: str, timeout_s: float = 30.0) -> None:
        self.rpc = tools.ToolsClient(addr, timeout_s=timeout_s)

    async def __aenter__(self) -> ToolConnections:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.rpc.close()

    async def add_sqlite(self, tenant_id: str, name: str, path: str, description: str) -> bool:
        """Register the connection (tools `<name>.query`, `<name>.schema`); False if the workspace
        has one of that name already (it is kept: it may be the operator's own)."""
        try:
            await self.rpc.add_connection(pb.AddConnectionRequest(
                tenant_id=tenant_id, name=name, driver="sqlite", path=path, description=description))
        except AlreadyExists:
            return False
        except LoomError as err:
            raise api_error(err, "tools") from err
        return True

    async def delete(self, tenant_id: str, name: str) -> None:
        try:
            await self.rpc.delete_tool(tenant_id, f"{name}.*")
        except LoomError as err:
            raise api_error(err, "tools") from err
