"""rag.v1 client for the knowledge API: Datasets management and Retrieval, in Dify's shapes.

Requests come in as Dify's JSON (already checked by the router's wire models) and answers go
back as Dify's JSON objects; the translation between the two vocabularies is rag_shapes.py.
The transport is the shared rag.v1 client (loom_common.clients.rag: lazy channel, deadline,
metadata, reads retried and writes not, statuses read into loom_common.errors), whose errors
become API errors here (clients/errors.py).
"""

from __future__ import annotations

import json

from loom.rag.v1 import rag_pb2 as pb
from loom_common.clients import rag
from loom_common.errors import LoomError
from loom_gateway.clients.errors import api_error
from loom_gateway.clients.rag_shapes import (
    SEARCH,
    child_chunk_body,
    dataset_body,
    document_body,
    metadata_filters,
    page_body,
    process_rule,
    search_method,
    segment_body,
)
from loom_gateway.domain.errors import BadRequest, NotFound


class RagClient:
    def __init__(self, addr: str, timeout_s: float):
        self.rpc = rag.RagClient(addr, timeout_s=timeout_s)

    async def close(self) -> None:
        await self.rpc.close()

    async def _call(self, name: rag.DatasetsRpc, req):
        try:
            return await self.rpc.datasets(name, req)
        except LoomError as err:
            raise api_error(err, "rag") from err

    # ---- datasets ------------------------------------------------------------------------

    async def create_dataset(self, t: str, name: str, description: str, retrieval_model: dict | None,
                             embedding_model: str | None, rule: dict | None = None) -> dict:
        req = pb.CreateDatasetRequest(tenant_id=t, name=name, description=description or "",
                                      embedding_model=embedding_model or "",
                                      search_method=search_method(retrieval_model))
        if (pr := process_rule(rule)) is not None:
            req.process_rule.CopyFrom(pr)
        return dataset_body(await self._call("CreateDataset", req))

    async def list_datasets(self, t: str, keyword: str, page: int, limit: int, ids: list[str] | None = None) -> dict:
        """`ids`: only those (a tag's datasets); None: all."""
        res = await self._call("ListDatasets", pb.ListDatasetsRequest(
            tenant_id=t, keyword=keyword or "", page=page, limit=limit, ids=ids or [], only_ids=ids is not None))
        return page_body(res, dataset_body)

    async def get_dataset(self, t: str, dataset_id: str) -> dict:
        return dataset_body(await self._call("GetDataset", pb.GetDatasetRequest(tenant_id=t, dataset_id=dataset_id)))

    async def update_dataset(self, t: str, dataset_id: str, name: str | None, description: str | None,
                             retrieval_model: dict | None, rule: dict | None = None) -> dict:
        """Only what is given changes; a new process rule applies to documents added later."""
        req = pb.UpdateDatasetRequest(tenant_id=t, dataset_id=dataset_id, search_method=search_method(retrieval_model))
        if (pr := process_rule(rule)) is not None:
            req.process_rule.CopyFrom(pr)
        if name is not None:
            req.name = name
        if description is not None:
            req.description = description
        return dataset_body(await self._call("UpdateDataset", req))

    async def delete_dataset(self, t: str, dataset_id: str) -> None:
        await self._call("DeleteDataset", pb.GetDatasetRequest(tenant_id=t, dataset_id=dataset_id))

    # ---- documents -----------------------------------------------------------------------

    async def create_document(self, t: str, dataset_id: str, name: str, *, text: str | None = None,
                              data: bytes | None = None, mime_type: str = "", rule: dict | None = None) -> dict:
        req = pb.CreateDocumentRequest(tenant_id=t, dataset_id=dataset_id, name=name, mime_type=mime_type)
        if text is not None:
            req.text = text
        else:
            req.file = data or b""
        pr = process_rule(rule)
        if pr is not None:
            req.process_rule.CopyFrom(pr)
        doc = await self._call("CreateDocument", req)
        return {"document": document_body(doc), "batch": doc.id}

    async def update_document(self, t: str, dataset_id: str, document_id: str, *, name: str | None,
                              text: str | None = None, data: bytes | None = None, mime_type: str = "",
                              rule: dict | None = None) -> dict:
        req = pb.UpdateDocumentRequest(tenant_id=t, dataset_id=dataset_id, document_id=document_id,
                                       mime_type=mime_type)
        if name is not None:
            req.name = name
        if text is not None:
            req.text = text
        elif data is not None:
            req.file = data
        pr = process_rule(rule)
        if pr is not None:
            req.process_rule.CopyFrom(pr)
        doc = await self._call("UpdateDocument", req)
        return {"document": document_body(doc), "batch": doc.id}

    async def list_documents(self, t: str, dataset_id: str, keyword: str, page: int, limit: int) -> dict:
        res = await self._call("ListDocuments", pb.ListDocumentsRequest(tenant_id=t, dataset_id=dataset_id,
                                                                         keyword=keyword or "", page=page,
                                                                         limit=limit))
        return page_body(res, document_body)

    async def get_document(self, t: str, dataset_id: str, document_id: str) -> pb.Document:
        return await self._call("GetDocument", pb.DocumentRef(tenant_id=t, dataset_id=dataset_id,
                                                               document_id=document_id))

    async def set_documents_status(self, t: str, dataset_id: str, document_ids: list[str], action: str) -> list:
        """Dify's enable | disable | archive | un_archive."""
        req = pb.SetDocumentsEnabledRequest(tenant_id=t, dataset_id=dataset_id, document_ids=document_ids,
                                            enabled=action == "enable")
        if action in ("archive", "un_archive"):
            req.archived = action == "archive"
        res = await self._call("SetDocumentsEnabled", req)
        return [document_body(d) for d in res.data]

    async def documents(self, t: str, dataset_id: str, cap: int = 10_000):
        """Every document of the dataset (pb.Document), page by page, at most `cap`."""
        page = 1
        while (page - 1) * 100 < cap:
            res = await self._call("ListDocuments", pb.ListDocumentsRequest(tenant_id=t, dataset_id=dataset_id,
                                                                             page=page, limit=100))
            for d in res.data:
                yield d
            if not res.has_more:
                return
            page += 1

    async def set_document_metadata(self, t: str, dataset_id: str, document_id: str, metadata: dict) -> None:
        """Replace a document's metadata (its chunks' copies follow; no re-indexing)."""
        await self._call("UpdateDocument", pb.UpdateDocumentRequest(
            tenant_id=t, dataset_id=dataset_id, document_id=document_id, metadata_json=json.dumps(metadata)))

    async def delete_document(self, t: str, dataset_id: str, document_id: str) -> None:
        await self._call("DeleteDocument", pb.DocumentRef(tenant_id=t, dataset_id=dataset_id,
                                                           document_id=document_id))

    # ---- segments ------------------------------------------------------------------------

    async def list_segments(self, t: str, dataset_id: str, document_id: str, keyword: str, page: int,
                            limit: int) -> dict:
        res = await self._call("ListSegments", pb.ListSegmentsRequest(
            tenant_id=t, dataset_id=dataset_id, document_id=document_id, keyword=keyword or "", page=page,
            limit=limit))
        return {**page_body(res, segment_body), "doc_form": "text_model"}

    async def create_segments(self, t: str, dataset_id: str, document_id: str, contents: list[dict]) -> dict:
        req = pb.CreateSegmentsRequest(tenant_id=t, dataset_id=dataset_id, document_id=document_id,
                                       segments=[pb.SegmentInput(content=c["content"]) for c in contents])
        res = await self._call("CreateSegments", req)
        return {"data": [segment_body(s) for s in res.data], "doc_form": "text_model"}

    async def update_segment(self, t: str, dataset_id: str, document_id: str, segment_id: str,
                             content: str | None, enabled: bool | None) -> dict:
        req = pb.UpdateSegmentRequest(tenant_id=t, dataset_id=dataset_id, document_id=document_id,
                                      segment_id=segment_id)
        if content is not None:
            req.content = content
        if enabled is not None:
            req.enabled = enabled
        return {"data": segment_body(await self._call("UpdateSegment", req)), "doc_form": "text_model"}

    async def get_segment(self, t: str, dataset_id: str, document_id: str, segment_id: str) -> dict:
        seg = await self._call("GetSegment", pb.SegmentRef(tenant_id=t, dataset_id=dataset_id, document_id=document_id,
                                                            segment_id=segment_id))
        return {"data": segment_body(seg), "doc_form": "hierarchical_model" if seg.parent_content else "text_model"}

    async def child_chunks(self, t: str, dataset_id: str, document_id: str, segment_id: str, keyword: str,
                           page: int, limit: int) -> dict:
        res = await self._call("ListSegments", pb.ListSegmentsRequest(
            tenant_id=t, dataset_id=dataset_id, document_id=document_id, keyword=keyword or "", page=page,
            limit=limit, children_of=segment_id))
        return {"data": [child_chunk_body(s, segment_id) for s in res.data], "total": res.total,
                "total_pages": -(-res.total // max(1, res.limit)), "page": res.page, "limit": res.limit}

    async def add_child_chunk(self, t: str, dataset_id: str, document_id: str, segment_id: str, content: str) -> dict:
        res = await self._call("CreateSegments", pb.CreateSegmentsRequest(
            tenant_id=t, dataset_id=dataset_id, document_id=document_id, children_of=segment_id,
            segments=[pb.SegmentInput(content=content)]))
        return {"data": child_chunk_body(res.data[0], segment_id)}

    async def sibling(self, t: str, dataset_id: str, document_id: str, segment_id: str, child_id: str) -> None:
        """`child_id` is a child of the same parent as `segment_id` (else 404, as Dify's)."""
        ref = {"tenant_id": t, "dataset_id": dataset_id, "document_id": document_id}
        seg = await self._call("GetSegment", pb.SegmentRef(**ref, segment_id=segment_id))
        child = await self._call("GetSegment", pb.SegmentRef(**ref, segment_id=child_id))
        if not seg.parent_content or child.parent_content != seg.parent_content:
            raise NotFound("Child chunk not found.", code="not_found")

    async def update_child_chunk(self, t: str, dataset_id: str, document_id: str, segment_id: str, child_id: str,
                                 content: str) -> dict:
        await self.sibling(t, dataset_id, document_id, segment_id, child_id)
        req = pb.UpdateSegmentRequest(tenant_id=t, dataset_id=dataset_id, document_id=document_id,
                                      segment_id=child_id, content=content)
        return {"data": child_chunk_body(await self._call("UpdateSegment", req), segment_id)}

    async def delete_segment(self, t: str, dataset_id: str, document_id: str, segment_id: str) -> None:
        await self._call("DeleteSegment", pb.SegmentRef(tenant_id=t, dataset_id=dataset_id, document_id=document_id,
                                                         segment_id=segment_id))

    # ---- retrieval -----------------------------------------------------------------------

    async def retrieve(self, t: str, dataset_id: str, query: str, model: dict | None) -> dict:
        model = model or {}
        method = model.get("search_method") or ""
        if method and method not in SEARCH:
            raise BadRequest(f"search_method must be one of {sorted(SEARCH)}", field="retrieval_model.search_method")
        req = pb.RetrieveRequest(tenant_id=t, dataset_ids=[dataset_id], query=query,
                                 method=SEARCH.get(method, pb.SEARCH_METHOD_UNSPECIFIED),
                                 top_k=int(model.get("top_k") or 0), rerank=bool(model.get("reranking_enable")))
        filters, logic = metadata_filters(model)
        req.filters.extend(filters)
        req.filter_logic = logic
        if model.get("score_threshold_enabled") and model.get("score_threshold") is not None:
            req.score_threshold = float(model["score_threshold"])
        weights = model.get("weights")
        if isinstance(weights, int | float):
            req.vector_weight, req.keyword_weight = float(weights), 1.0 - float(weights)
        try:
            res = await self.rpc.retrieve(req)
        except LoomError as err:
            raise api_error(err, "rag") from err
        # Parent-child chunks: the child matched, the parent is the record's content (Dify's shape).
        records = [{"segment": {"id": c.segment_id, "position": c.position, "document_id": c.document_id,
                                "content": c.parent_content or c.content, "answer": None,
                                "word_count": len((c.parent_content or c.content).split()),
                                "tokens": 0, "keywords": [], "index_node_id": c.segment_id, "hit_count": 0,
                                "enabled": True, "status": "completed",
                                "document": {"id": c.document_id, "data_source_type": "upload_file",
                                             "name": c.document_name}},
                    "child_chunks": [{"id": c.segment_id, "content": c.content, "position": c.position,
                                      "score": c.score}] if c.parent_content else None,
                    "score": c.score, "tsne_position": None} for c in res.chunks]
        return {"query": {"content": query}, "records": records}
