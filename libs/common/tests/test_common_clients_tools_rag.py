"""The shared tools.v1 and rag.v1 clients against real grpc.aio servers: reads are retried on a
retryable status, writes and tool invocations are not (they may have had their effect), every
call carries its request's tenant, and statuses come back as `loom_common.errors`."""

from __future__ import annotations

import collections

import grpc
import pytest

from loom.rag.v1 import rag_pb2 as rpb
from loom.rag.v1 import rag_pb2_grpc as rpb_grpc
from loom.tools.v1 import tools_pb2 as tpb
from loom.tools.v1 import tools_pb2_grpc as tpb_grpc
from loom_common import errors
from loom_common.clients.rag import RagClient
from loom_common.clients.tools import RETRYABLE_CODES, ToolsClient
from loom_common.grpc_errors import abort_status
from loom_common.retry import RetryPolicy
from loom_common.telemetry import TENANT_HEADER

FAST = RetryPolicy(initial_interval_s=0.01, maximum_interval_s=0.05, maximum_attempts=3)


class _Unavailable:
    """Every RPC answers UNAVAILABLE once, then its normal answer; calls and tenants are counted."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.tenants: list[str] = []

    async def _first_fails(self, name: str, context) -> None:
        self.calls[name] += 1
        self.tenants.append(dict(context.invocation_metadata()).get(TENANT_HEADER, ""))
        if self.calls[name] == 1:
            await abort_status(context, grpc.StatusCode.UNAVAILABLE, "restarting")


class _Tools(_Unavailable, tpb_grpc.ToolsServicer):
    async def ListTools(self, request, context):
        await self._first_fails("ListTools", context)
        return tpb.ListToolsResponse(tools=[tpb.ToolInfo(name="calc.add", kind="http")])

    async def Invoke(self, request, context):
        await self._first_fails("Invoke", context)
        return tpb.InvokeResponse(ok=True, result_json="3")

    async def RegisterTool(self, request, context):
        await self._first_fails("RegisterTool", context)
        return tpb.RegisterToolResponse()


class _Rag(_Unavailable, rpb_grpc.DatasetsServicer, rpb_grpc.RetrievalServicer):
    async def GetDataset(self, request, context):
        await self._first_fails("GetDataset", context)
        return rpb.Dataset(id=request.dataset_id, name="kb")

    async def CreateDataset(self, request, context):
        await self._first_fails("CreateDataset", context)
        return rpb.Dataset(id="d1", name=request.name)

    async def Retrieve(self, request, context):
        await self._first_fails("Retrieve", context)
        return rpb.RetrieveResponse(chunks=[rpb.RetrievedChunk(content="hit", score=0.5)])


@pytest.fixture
async def served():
    tools, rag = _Tools(), _Rag()
    server = grpc.aio.server()
    tpb_grpc.add_ToolsServicer_to_server(tools, server)
    rpb_grpc.add_DatasetsServicer_to_server(rag, server)
    rpb_grpc.add_RetrievalServicer_to_server(rag, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    addr = f"127.0.0.1:{port}"
    clients = ToolsClient(addr, timeout_s=10.0, retry=FAST), RagClient(addr, timeout_s=10.0, retry=FAST)
    try:
        yield tools, rag, *clients
    finally:
        for c in clients:
            await c.close()
        await server.stop(0)


async def test_tools_reads_are_retried_and_writes_and_invocations_are_not(served) -> None:
    tools, _, client, _ = served
    assert [t.name for t in await client.list_tools("t1")] == ["calc.add"]
    assert tools.calls["ListTools"] == 2
    with pytest.raises(errors.Unavailable):
        await client.invoke(tpb.InvokeRequest(tenant_id="t1", tool="calc.add", timeout_s=1.0))
    assert tools.calls["Invoke"] == 1  # a tool may have had side effects: the node's retry settings decide
    with pytest.raises(errors.Unavailable) as caught:
        await client.register_tool(tpb.RegisterToolRequest(tenant_id="t1", name="x"))
    assert tools.calls["RegisterTool"] == 1 and caught.value.service == "tools"
    assert set(tools.tenants) == {"t1"}
    assert "timeout" in RETRYABLE_CODES and "invalid_arguments" not in RETRYABLE_CODES


async def test_rag_reads_are_retried_and_writes_are_not(served) -> None:
    _, rag, _, client = served
    got = await client.datasets("GetDataset", rpb.GetDatasetRequest(tenant_id="t2", dataset_id="d9"))
    assert got.id == "d9" and rag.calls["GetDataset"] == 2
    res = await client.retrieve(rpb.RetrieveRequest(tenant_id="t2", dataset_ids=["d9"], query="q"))
    assert [c.content for c in res.chunks] == ["hit"] and rag.calls["Retrieve"] == 2
    with pytest.raises(errors.Unavailable):
        await client.datasets("CreateDataset", rpb.CreateDatasetRequest(tenant_id="t2", name="kb"))
    assert rag.calls["CreateDataset"] == 1
    assert set(rag.tenants) == {"t2"}
