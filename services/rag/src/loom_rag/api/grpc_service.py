"""rag.v1 servicers: thin over `Retriever` and `Management` (parse, call, map back)."""

from __future__ import annotations

import time

from loom.rag.v1 import rag_pb2 as pb
from loom.rag.v1 import rag_pb2_grpc
from loom_rag.api import convert
from loom_rag.api.errors import guarded
from loom_rag.domain.models import RetrievalQuery
from loom_rag.domain.validation import json_object
from loom_rag.management import Management, Source
from loom_rag.retrieval.service import Retriever


class RetrievalServicer(rag_pb2_grpc.RetrievalServicer):
    def __init__(self, retriever: Retriever):
        self.retriever = retriever

    async def Retrieve(self, request: pb.RetrieveRequest, context) -> pb.RetrieveResponse:
        started = time.perf_counter()

        async def call():
            query = RetrievalQuery(
                tenant_id=request.tenant_id, dataset_ids=list(request.dataset_ids), query=request.query,
                method=convert.method_from(request.method), top_k=request.top_k or 4,
                score_threshold=request.score_threshold if request.HasField("score_threshold") else None,
                vector_weight=request.vector_weight, keyword_weight=request.keyword_weight, rerank=request.rerank,
                filters=[convert.filter_from(f) for f in request.filters], filter_logic=request.filter_logic or "and",
                query_vector=list(request.query_vector) or None,
                query_embedding_model=request.query_embedding_model or None)
            if query.vector_weight == 0 and query.keyword_weight == 0:
                query = RetrievalQuery(**{**query.__dict__, "vector_weight": 0.5, "keyword_weight": 0.5})
            return await self.retriever.retrieve(query)

        hits = await guarded(context, call())
        return pb.RetrieveResponse(chunks=[convert.hit_to(h) for h in hits],
                                   latency_ms=(time.perf_counter() - started) * 1000)


def _source(request) -> Source | None:
    which = request.WhichOneof("source")
    if which == "text":
        return Source(text=request.text)
    if which == "file":
        return Source(file=request.file, mime_type=request.mime_type)
    return None


def _page(response_type, page, convert_one):
    return response_type(data=[convert_one(i) for i in page.items], total=page.total, has_more=page.has_more,
                         page=page.page, limit=page.limit)


class DatasetsServicer(rag_pb2_grpc.DatasetsServicer):
    def __init__(self, management: Management):
        self.m = management

    async def CreateDataset(self, r: pb.CreateDatasetRequest, context) -> pb.Dataset:
        async def call():
            return await self.m.create_dataset(
                r.tenant_id, name=r.name, description=r.description, embedding_model=r.embedding_model,
                embedding_dim=r.embedding_dimension, process_rule=convert.rule_from(r.process_rule,
                                                                                   r.HasField("process_rule")),
                search_method=convert.method_from(r.search_method), text_search_config=r.text_search_config)
        return convert.dataset_to(await guarded(context, call()))

    async def ListDatasets(self, r: pb.ListDatasetsRequest, context) -> pb.ListDatasetsResponse:
        page = await guarded(context, self.m.list_datasets(r.tenant_id, keyword=r.keyword, page=r.page,
                                                           limit=r.limit,
                                                           ids=list(r.ids) if r.ids or r.only_ids else None))
        return _page(pb.ListDatasetsResponse, page, convert.dataset_to)

    async def GetDataset(self, r: pb.GetDatasetRequest, context) -> pb.Dataset:
        return convert.dataset_to(await guarded(context, self.m.get_dataset(r.tenant_id, r.dataset_id)))

    async def UpdateDataset(self, r: pb.UpdateDatasetRequest, context) -> pb.Dataset:
        async def call():
            return await self.m.update_dataset(
                r.tenant_id, r.dataset_id, name=r.name if r.HasField("name") else None,
                description=r.description if r.HasField("description") else None,
                process_rule=convert.rule_from(r.process_rule, r.HasField("process_rule")),
                search_method=convert.method_from(r.search_method))
        return convert.dataset_to(await guarded(context, call()))

    async def DeleteDataset(self, r: pb.GetDatasetRequest, context) -> pb.Deleted:
        await guarded(context, self.m.delete_dataset(r.tenant_id, r.dataset_id))
        return pb.Deleted()

    async def CreateDocument(self, r: pb.CreateDocumentRequest, context) -> pb.Document:
        async def call():
            return await self.m.create_document(
                r.tenant_id, r.dataset_id, name=r.name, source=_source(r) or Source(),
                process_rule=convert.rule_from(r.process_rule, r.HasField("process_rule")),
                metadata=json_object("metadata_json", r.metadata_json))
        return convert.document_to(await guarded(context, call()))

    async def ListDocuments(self, r: pb.ListDocumentsRequest, context) -> pb.ListDocumentsResponse:
        page = await guarded(context, self.m.list_documents(r.tenant_id, r.dataset_id, keyword=r.keyword,
                                                            page=r.page, limit=r.limit))
        return _page(pb.ListDocumentsResponse, page, convert.document_to)

    async def GetDocument(self, r: pb.DocumentRef, context) -> pb.Document:
        return convert.document_to(await guarded(context, self.m.get_document(r.tenant_id, r.dataset_id,
                                                                              r.document_id)))

    async def UpdateDocument(self, r: pb.UpdateDocumentRequest, context) -> pb.Document:
        async def call():
            return await self.m.update_document(
                r.tenant_id, r.dataset_id, r.document_id, name=r.name if r.HasField("name") else None,
                source=_source(r), process_rule=convert.rule_from(r.process_rule, r.HasField("process_rule")),
                metadata=json_object("metadata_json", r.metadata_json) if r.HasField("metadata_json") else None)
        return convert.document_to(await guarded(context, call()))

    async def DeleteDocument(self, r: pb.DocumentRef, context) -> pb.Deleted:
        await guarded(context, self.m.delete_document(r.tenant_id, r.dataset_id, r.document_id))
        return pb.Deleted()

    async def SetDocumentsEnabled(self, r: pb.SetDocumentsEnabledRequest, context) -> pb.ListDocumentsResponse:
        if r.HasField("archived"):
            docs = await guarded(context, self.m.set_documents_archived(r.tenant_id, r.dataset_id,
                                                                        list(r.document_ids), r.archived))
        else:
            docs = await guarded(context, self.m.set_documents_enabled(r.tenant_id, r.dataset_id,
                                                                       list(r.document_ids), r.enabled))
        return pb.ListDocumentsResponse(data=[convert.document_to(d) for d in docs], total=len(docs), page=1,
                                        limit=len(docs))

    async def ListSegments(self, r: pb.ListSegmentsRequest, context) -> pb.ListSegmentsResponse:
        page = await guarded(context, self.m.list_segments(
            r.tenant_id, r.dataset_id, r.document_id, keyword=r.keyword,
            enabled=r.enabled if r.HasField("enabled") else None, page=r.page, limit=r.limit,
            children_of=r.children_of or None))
        return _page(pb.ListSegmentsResponse, page, convert.segment_to)

    async def CreateSegments(self, r: pb.CreateSegmentsRequest, context) -> pb.ListSegmentsResponse:
        async def call():
            items = [(s.content, json_object("segments.metadata_json", s.metadata_json)) for s in r.segments]
            return await self.m.create_segments(r.tenant_id, r.dataset_id, r.document_id, items,
                                                children_of=r.children_of or None)
        segs = await guarded(context, call())
        return pb.ListSegmentsResponse(data=[convert.segment_to(s) for s in segs], total=len(segs), page=1,
                                       limit=len(segs))

    async def UpdateSegment(self, r: pb.UpdateSegmentRequest, context) -> pb.Segment:
        async def call():
            return await self.m.update_segment(
                r.tenant_id, r.dataset_id, r.document_id, r.segment_id,
                content=r.content if r.HasField("content") else None,
                enabled=r.enabled if r.HasField("enabled") else None,
                metadata=json_object("metadata_json", r.metadata_json) if r.HasField("metadata_json") else None)
        return convert.segment_to(await guarded(context, call()))

    async def GetSegment(self, r: pb.SegmentRef, context) -> pb.Segment:
        return convert.segment_to(await guarded(context, self.m.get_segment(r.tenant_id, r.dataset_id, r.document_id,
                                                                            r.segment_id)))

    async def DeleteSegment(self, r: pb.SegmentRef, context) -> pb.Deleted:
        await guarded(context, self.m.delete_segment(r.tenant_id, r.dataset_id, r.document_id, r.segment_id))
        return pb.Deleted()
