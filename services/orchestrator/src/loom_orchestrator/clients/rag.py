"""`Retriever` over the shared rag.v1 client (loom_common.clients.rag: Retrieve is a read, so
retried on UNAVAILABLE and the like; deadline, metadata and statuses as every client's)."""

from __future__ import annotations

import json
from typing import Any

from loom.rag.v1 import rag_pb2 as pb
from loom_common.clients import rag
from loom_orchestrator.engine.ports import RetrievalQuery

_METHODS = {"semantic_search": pb.SEARCH_METHOD_VECTOR, "full_text_search": pb.SEARCH_METHOD_FULL_TEXT,
            "hybrid_search": pb.SEARCH_METHOD_HYBRID}


class RagClient:
    def __init__(self, addr: str, timeout_s: float = 30.0) -> None:
        self.rpc = rag.RagClient(addr, timeout_s=timeout_s)

    async def close(self) -> None:
        await self.rpc.close()

    async def retrieve(self, query: RetrievalQuery, timeout_s: float) -> list[dict[str, Any]]:
        req = pb.RetrieveRequest(tenant_id=query.tenant_id, dataset_ids=query.dataset_ids, query=query.query,
                                 method=_METHODS.get(query.method, pb.SEARCH_METHOD_UNSPECIFIED), top_k=query.top_k,
                                 vector_weight=query.vector_weight, keyword_weight=query.keyword_weight,
                                 rerank=query.rerank, filter_logic=query.filter_logic,
                                 filters=[pb.MetadataFilter(key=k, op=op, value_json=json.dumps(v))
                                          for k, op, v in query.filters])
        if query.score_threshold is not None:
            req.score_threshold = query.score_threshold
        resp = await self.rpc.retrieve(req, timeout_s=timeout_s)
        # Parent-child datasets: the child matched, its parent is the context (as Dify's node gives it).
        return [{"content": c.parent_content or c.content, "title": c.document_name,
                 "metadata": {"score": c.score, "document_id": c.document_id, "dataset_id": c.dataset_id,
                              "segment_id": c.segment_id, "position": c.position, "document_name": c.document_name,
                              **(json.loads(c.metadata_json) if c.metadata_json else {})}}
                for c in resp.chunks]
