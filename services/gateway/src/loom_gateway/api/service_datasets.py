"""Knowledge API (Dify-compatible, dataset keys or console tokens with X-Workspace-Id):
datasets, documents by text and by file, indexing status, segments, retrieve; mapped onto
rag's gRPC `Datasets` and `Retrieval` services."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from loom_gateway.api.deps import gw, require
from loom_gateway.clients.rag_shapes import document_body, indexing_status_body
from loom_gateway.domain.errors import BadRequest, PayloadTooLarge
from loom_gateway.domain.rbac import Perm, Principal

router = APIRouter(prefix="/v1/datasets", tags=["knowledge api"])


class DatasetCreate(BaseModel):
    name: str = Field(min_length=1, max_length=40)
    description: str = Field("", max_length=400)
    indexing_technique: str | None = Field(None, max_length=40)
    permission: str | None = Field(None, max_length=40)
    embedding_model: str | None = Field(None, max_length=200)
    embedding_model_provider: str | None = Field(None, max_length=200)
    retrieval_model: dict[str, Any] | None = None
    process_rule: dict[str, Any] | None = Field(None, description="how documents added without their own "
                                                "process_rule are split (Dify's shape); default: automatic")


class DatasetPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=40)
    description: str | None = Field(None, max_length=400)
    retrieval_model: dict[str, Any] | None = Field(None, description="{search_method: semantic_search | "
                                                   "full_text_search | hybrid_search}")
    process_rule: dict[str, Any] | None = Field(None, description="the dataset's chunking (Dify's process_rule: "
                                                "mode automatic | custom | hierarchical, rules.segmentation "
                                                "{separator, max_tokens, chunk_overlap}, ...); applies to "
                                                "documents added later without their own")


class TextDocument(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    text: str = Field(min_length=1, max_length=10_000_000)
    indexing_technique: str | None = Field(None, max_length=40)
    doc_form: str | None = Field(None, max_length=40)
    process_rule: dict[str, Any] | None = None


class TextUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=255)
    text: str | None = Field(None, min_length=1, max_length=10_000_000)
    process_rule: dict[str, Any] | None = None


class DocumentIds(BaseModel):
    document_ids: list[str] = Field(min_length=1, max_length=100)


class SegmentIn(BaseModel):
    content: str = Field(min_length=1, max_length=100_000)
    answer: str | None = None
    keywords: list[str] | None = None


class SegmentsBody(BaseModel):
    segments: list[SegmentIn] = Field(min_length=1, max_length=1000)


class SegmentPatch(BaseModel):
    content: str | None = Field(None, min_length=1, max_length=100_000)
    answer: str | None = None
    keywords: list[str] | None = None
    enabled: bool | None = None


class SegmentUpdateBody(BaseModel):
    segment: SegmentPatch


class RetrieveBody(BaseModel):
    query: str = Field(min_length=1, max_length=10_000)
    retrieval_model: dict[str, Any] | None = None


@router.post("", name="datasets.create")
async def create_dataset(body: DatasetCreate, request: Request, p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    g = gw(request)  # no model named: the workspace's default embedding model, if it set one (else rag's)
    model = body.embedding_model or await g.workspace_settings.embedding_model(p.tenant_id)
    return await g.rag.create_dataset(p.tenant_id, body.name, body.description, body.retrieval_model, model,
                                      body.process_rule)


async def _with_tags(request: Request, tenant_id: str, datasets: list[dict]) -> list[dict]:
    tags = gw(request).knowledge_tags
    if tags is not None and datasets:
        bound = await tags.of_targets(tenant_id, [d["id"] for d in datasets])
        for d in datasets:
            d["tags"] = bound.get(d["id"], [])
    return datasets


@router.get("", name="datasets.list")
async def list_datasets(request: Request, p: Principal = require(Perm.DATASETS_READ),
                        page: int = Query(1, ge=1, le=100_000), limit: int = Query(20, ge=1, le=100),
                        keyword: str = Query("", max_length=200),
                        tag_ids: list[str] | None = Query(None, max_length=100,
                                                          description="only datasets with any of these tags")) -> dict:
    g = gw(request)
    ids = await g.knowledge_tags.targets(p.tenant_id, tag_ids) if tag_ids and g.knowledge_tags else None
    listed = await g.rag.list_datasets(p.tenant_id, keyword, page, limit, ids)
    await _with_tags(request, p.tenant_id, listed["data"])
    return listed


@router.get("/{dataset_id}", name="datasets.get")
async def get_dataset(dataset_id: str, request: Request, p: Principal = require(Perm.DATASETS_READ)) -> dict:
    return (await _with_tags(request, p.tenant_id, [await gw(request).rag.get_dataset(p.tenant_id, dataset_id)]))[0]


@router.patch("/{dataset_id}", name="datasets.update")
async def update_dataset(dataset_id: str, body: DatasetPatch, request: Request,
                         p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    return await gw(request).rag.update_dataset(p.tenant_id, dataset_id, body.name, body.description,
                                                body.retrieval_model, body.process_rule)


@router.delete("/{dataset_id}", status_code=204, name="datasets.delete")
async def delete_dataset(dataset_id: str, request: Request, p: Principal = require(Perm.DATASETS_WRITE)) -> Response:
    g = gw(request)
    await g.rag.delete_dataset(p.tenant_id, dataset_id)
    if g.knowledge_tags is not None and g.knowledge_metadata is not None:  # what the gateway kept about it
        await g.knowledge_tags.forget(p.tenant_id, dataset_id)
        await g.knowledge_metadata.forget(p.tenant_id, dataset_id)
    return Response(status_code=204)


@router.post("/{dataset_id}/document/create-by-text", name="documents.create_by_text")
@router.post("/{dataset_id}/document/create_by_text", name="documents.create_by_text_legacy",
             include_in_schema=False)
async def create_by_text(dataset_id: str, body: TextDocument, request: Request,
                         p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    return await gw(request).rag.create_document(p.tenant_id, dataset_id, body.name, text=body.text,
                                                 rule=body.process_rule)


def _data_field(data: str | None) -> dict:
    if not data:
        return {}
    try:
        parsed = json.loads(data)
    except json.JSONDecodeError as exc:
        raise BadRequest("data must be a JSON object", field="data") from exc
    if not isinstance(parsed, dict):
        raise BadRequest("data must be a JSON object", field="data")
    return parsed


async def _read(request: Request, file: UploadFile) -> bytes:
    limit = gw(request).settings.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"file is larger than {limit} bytes", code="file_too_large")
    if not file.filename:
        raise BadRequest("file must have a file name", field="file")
    return data


@router.post("/{dataset_id}/document/create-by-file", name="documents.create_by_file")
@router.post("/{dataset_id}/document/create_by_file", name="documents.create_by_file_legacy",
             include_in_schema=False)
async def create_by_file(dataset_id: str, request: Request, file: UploadFile = File(...),
                         data: str | None = Form(None, max_length=100_000),
                         p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    meta = _data_field(data)
    content = await _read(request, file)
    return await gw(request).rag.create_document(p.tenant_id, dataset_id, file.filename, data=content,
                                                 mime_type=file.content_type or "", rule=meta.get("process_rule"))


@router.post("/{dataset_id}/documents/{document_id}/update-by-text", name="documents.update_by_text")
@router.post("/{dataset_id}/documents/{document_id}/update_by_text", name="documents.update_by_text_legacy",
             include_in_schema=False)
async def update_by_text(dataset_id: str, document_id: str, body: TextUpdate, request: Request,
                         p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    return await gw(request).rag.update_document(p.tenant_id, dataset_id, document_id, name=body.name,
                                                 text=body.text, rule=body.process_rule)


@router.post("/{dataset_id}/documents/{document_id}/update-by-file", name="documents.update_by_file")
@router.post("/{dataset_id}/documents/{document_id}/update_by_file", name="documents.update_by_file_legacy",
             include_in_schema=False)
async def update_by_file(dataset_id: str, document_id: str, request: Request, file: UploadFile = File(...),
                         data: str | None = Form(None, max_length=100_000),
                         p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    meta = _data_field(data)
    content = await _read(request, file)
    return await gw(request).rag.update_document(p.tenant_id, dataset_id, document_id, name=meta.get("name"),
                                                 data=content, mime_type=file.content_type or "",
                                                 rule=meta.get("process_rule"))


@router.get("/{dataset_id}/documents", name="documents.list")
async def list_documents(dataset_id: str, request: Request, p: Principal = require(Perm.DATASETS_READ),
                         page: int = Query(1, ge=1, le=100_000), limit: int = Query(20, ge=1, le=100),
                         keyword: str = Query("", max_length=200)) -> dict:
    g = gw(request)
    listed = await g.rag.list_documents(p.tenant_id, dataset_id, keyword, page, limit)
    if g.knowledge_metadata is not None:  # doc_metadata in Dify's list shape
        await g.knowledge_metadata.as_dify(p.tenant_id, dataset_id, listed["data"])
    return listed


@router.get("/{dataset_id}/documents/{document_id}", name="documents.get")
async def get_document(dataset_id: str, document_id: str, request: Request,
                       p: Principal = require(Perm.DATASETS_READ)) -> dict:
    g = gw(request)
    body = document_body(await g.rag.get_document(p.tenant_id, dataset_id, document_id))
    if g.knowledge_metadata is not None:
        await g.knowledge_metadata.as_dify(p.tenant_id, dataset_id, [body])
    return body


@router.delete("/{dataset_id}/documents/{document_id}", status_code=204, name="documents.delete")
async def delete_document(dataset_id: str, document_id: str, request: Request,
                          p: Principal = require(Perm.DATASETS_WRITE)) -> Response:
    await gw(request).rag.delete_document(p.tenant_id, dataset_id, document_id)
    return Response(status_code=204)


@router.patch("/{dataset_id}/documents/status/{action}", name="documents.set_status")
async def set_documents_status(dataset_id: str, action: Literal["enable", "disable", "archive", "un_archive"],
                               body: DocumentIds, request: Request, p: Principal = require(Perm.DATASETS_WRITE)
                               ) -> dict:
    """Dify's batch enable/disable/archive/un_archive: a disabled or archived document's chunks
    stay stored but are not retrieved; un-archiving leaves `enabled` as it was."""
    docs = await gw(request).rag.set_documents_status(p.tenant_id, dataset_id, body.document_ids, action)
    return {"result": "success", "data": docs}


@router.get("/{dataset_id}/documents/{batch}/indexing-status", name="documents.indexing_status")
async def indexing_status(dataset_id: str, batch: str, request: Request,
                          p: Principal = require(Perm.DATASETS_READ)) -> dict:
    # Loom's batch id is the document id: one document per create call.
    return {"data": [indexing_status_body(await gw(request).rag.get_document(p.tenant_id, dataset_id, batch))]}


@router.post("/{dataset_id}/documents/{document_id}/segments", name="segments.create")
async def create_segments(dataset_id: str, document_id: str, body: SegmentsBody, request: Request,
                          p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    return await gw(request).rag.create_segments(p.tenant_id, dataset_id, document_id,
                                                 [s.model_dump() for s in body.segments])


@router.get("/{dataset_id}/documents/{document_id}/segments", name="segments.list")
async def list_segments(dataset_id: str, document_id: str, request: Request,
                        p: Principal = require(Perm.DATASETS_READ), page: int = Query(1, ge=1, le=100_000),
                        limit: int = Query(20, ge=1, le=100), keyword: str = Query("", max_length=200)) -> dict:
    return await gw(request).rag.list_segments(p.tenant_id, dataset_id, document_id, keyword, page, limit)


@router.get("/{dataset_id}/documents/{document_id}/segments/{segment_id}", name="segments.get")
async def get_segment(dataset_id: str, document_id: str, segment_id: str, request: Request,
                      p: Principal = require(Perm.DATASETS_READ)) -> dict:
    return await gw(request).rag.get_segment(p.tenant_id, dataset_id, document_id, segment_id)


@router.post("/{dataset_id}/documents/{document_id}/segments/{segment_id}", name="segments.update")
async def update_segment(dataset_id: str, document_id: str, segment_id: str, body: SegmentUpdateBody,
                         request: Request, p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    return await gw(request).rag.update_segment(p.tenant_id, dataset_id, document_id, segment_id,
                                                body.segment.content, body.segment.enabled)


@router.delete("/{dataset_id}/documents/{document_id}/segments/{segment_id}", status_code=204,
               name="segments.delete")
async def delete_segment(dataset_id: str, document_id: str, segment_id: str, request: Request,
                         p: Principal = require(Perm.DATASETS_WRITE)) -> Response:
    await gw(request).rag.delete_segment(p.tenant_id, dataset_id, document_id, segment_id)
    return Response(status_code=204)


@router.post("/{dataset_id}/retrieve", name="datasets.retrieve")
@router.post("/{dataset_id}/hit-testing", name="datasets.hit_testing")  # Dify's older name for it
async def retrieve(dataset_id: str, body: RetrieveBody, request: Request,
                   p: Principal = require(Perm.DATASETS_READ)) -> dict:
    return await gw(request).rag.retrieve(p.tenant_id, dataset_id, body.query, body.retrieval_model)
