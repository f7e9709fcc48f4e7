"""The rag.v1 client every service uses (the gateway's knowledge API and console, the
orchestrator's knowledge-retrieval node).

Requests and answers are the generated messages: each caller shapes them for its own users
(Dify's JSON in the gateway, the node's context list in the orchestrator). Every request carries
its `tenant_id`, which is also sent as call metadata. Reads (Get*, List*, Retrieve) are retried on
a retryable status; writes are not (a create may have happened).
"""

from __future__ import annotations

from typing import Any, Literal

from loom.rag.v1 import rag_pb2 as pb
from loom.rag.v1 import rag_pb2_grpc as pb_grpc
from loom_common.clients.base import DEFAULT_RETRY, NO_RETRY, ServiceClient
from loom_common.retry import RetryPolicy

# The Datasets service's RPCs (rag.proto), by name.
DatasetsRpc = Literal[
    "CreateDataset", "ListDatasets", "GetDataset", "UpdateDataset", "DeleteDataset",
    "CreateDocument", "ListDocuments", "GetDocument", "UpdateDocument", "DeleteDocument", "SetDocumentsEnabled",
    "ListSegments", "CreateSegments", "UpdateSegment", "DeleteSegment", "GetSegment",
]
_READS = ("Get", "List")


class RagClient(ServiceClient):
    service = "rag"

    def __init__(self, addr: str, *, timeout_s: float, retry: RetryPolicy = DEFAULT_RETRY) -> None:
        super().__init__(addr, timeout_s=timeout_s, retry=retry)
        self._stubs: tuple[pb_grpc.DatasetsStub, pb_grpc.RetrievalStub] | None = None

    @property
    def stubs(self) -> tuple[pb_grpc.DatasetsStub, pb_grpc.RetrievalStub]:
        if self._stubs is None:
            self._stubs = pb_grpc.DatasetsStub(self.channel), pb_grpc.RetrievalStub(self.channel)
        return self._stubs

    async def close(self) -> None:
        self._stubs = None
        await super().close()

    async def retrieve(self, request: pb.RetrieveRequest, *, timeout_s: float | None = None) -> pb.RetrieveResponse:
        return await self.unary(self.stubs[1].Retrieve, request, tenant_id=request.tenant_id, timeout_s=timeout_s)

    async def datasets(self, rpc: DatasetsRpc, request: Any) -> Any:
        """One Datasets call: `rpc` names it, `request` is its request message; its answer."""
        return await self.unary(getattr(self.stubs[0], rpc), request, tenant_id=request.tenant_id,
                                retry=None if rpc.startswith(_READS) else NO_RETRY)
