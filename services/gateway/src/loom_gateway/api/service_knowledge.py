"""Knowledge API additions (Dify-compatible, dataset keys or console tokens with X-Workspace-Id):
dataset tags and dataset metadata. Registered before service_datasets, so that
`/v1/datasets/tags` is not read as a dataset id.

    GET/POST/PATCH/DELETE  /v1/datasets/tags                   list, create, rename, delete
    POST                   /v1/datasets/tags/binding           {tag_ids, target_id}
    POST                   /v1/datasets/tags/unbinding         {tag_id, target_id}
    GET                    /v1/datasets/{id}/tags
    GET/POST               /v1/datasets/{id}/metadata          fields (with use counts), create
    PATCH/DELETE           /v1/datasets/{id}/metadata/{metadata_id}
    GET                    /v1/datasets/{id}/metadata/built-in
    POST                   /v1/datasets/{id}/metadata/built-in/{enable|disable}
    POST                   /v1/datasets/{id}/documents/metadata   values per document
    GET/POST               .../documents/{doc}/segments/{seg}/child_chunks     (parent-child documents)
    PATCH/DELETE           .../documents/{doc}/segments/{seg}/child_chunks/{child_id}

Child chunks: a parent-child document's segments are its children, each carrying its parent;
`{seg}` names one of them, and its child_chunks are the children of the same parent.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field, JsonValue

from loom_gateway.api.deps import gw, require
from loom_gateway.domain.knowledge_metadata import BUILT_IN, KnowledgeMetadata
from loom_gateway.domain.rbac import Perm, Principal
from loom_gateway.store.knowledge_tags import KnowledgeTags

router = APIRouter(prefix="/v1/datasets", tags=["knowledge api"])


class TagCreate(BaseModel):
    name: str = Field(min_length=1, max_length=50)


class TagRename(BaseModel):
    tag_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=50)


class TagRef(BaseModel):
    tag_id: str = Field(min_length=1, max_length=64)


class Binding(BaseModel):
    tag_ids: list[str] = Field(min_length=1, max_length=100)
    target_id: str = Field(min_length=1, max_length=64)


class Unbinding(BaseModel):
    tag_id: str = Field(min_length=1, max_length=64)
    target_id: str = Field(min_length=1, max_length=64)


class MetadataCreate(BaseModel):
    type: Literal["string", "number", "time"]
    name: str = Field(min_length=1, max_length=255)


class MetadataRename(BaseModel):
    name: str = Field(min_length=1, max_length=255)


class MetadataValue(BaseModel):
    id: str = Field(min_length=1, max_length=64)
    name: str | None = Field(None, max_length=255)
    value: JsonValue = None


class DocumentMetadata(BaseModel):
    document_id: str = Field(min_length=1, max_length=64)
    metadata_list: list[MetadataValue] = Field(max_length=100)
    partial_update: bool = False


class MetadataOperations(BaseModel):
    operation_data: list[DocumentMetadata] = Field(min_length=1, max_length=100)


class ChildChunk(BaseModel):
    content: str = Field(min_length=1, max_length=100_000)


def tags(request: Request) -> KnowledgeTags:
    g = gw(request)
    assert g.knowledge_tags is not None
    return g.knowledge_tags


def metadata(request: Request) -> KnowledgeMetadata:
    g = gw(request)
    assert g.knowledge_metadata is not None
    return g.knowledge_metadata


# ---- tags -----------------------------------------------------------------------------------

@router.get("/tags", name="datasets.tags.list")
async def list_tags(request: Request, p: Principal = require(Perm.DATASETS_READ)) -> list[dict]:
    return await tags(request).list(p.tenant_id)


@router.post("/tags", name="datasets.tags.create")
async def create_tag(body: TagCreate, request: Request, p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    return await tags(request).create(p.tenant_id, body.name)


@router.patch("/tags", name="datasets.tags.update")
async def rename_tag(body: TagRename, request: Request, p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    return await tags(request).rename(p.tenant_id, body.tag_id, body.name)


@router.delete("/tags", status_code=204, name="datasets.tags.delete")
async def delete_tag(body: TagRef, request: Request, p: Principal = require(Perm.DATASETS_WRITE)) -> Response:
    await tags(request).delete(p.tenant_id, body.tag_id)
    return Response(status_code=204)


@router.post("/tags/binding", status_code=204, name="datasets.tags.bind")
async def bind_tags(body: Binding, request: Request, p: Principal = require(Perm.DATASETS_WRITE)) -> Response:
    await gw(request).rag.get_dataset(p.tenant_id, body.target_id)  # 404 unless the workspace's
    await tags(request).bind(p.tenant_id, body.tag_ids, body.target_id)
    return Response(status_code=204)


@router.post("/tags/unbinding", status_code=204, name="datasets.tags.unbind")
async def unbind_tag(body: Unbinding, request: Request, p: Principal = require(Perm.DATASETS_WRITE)) -> Response:
    await tags(request).unbind(p.tenant_id, body.tag_id, body.target_id)
    return Response(status_code=204)


@router.get("/{dataset_id}/tags", name="datasets.tags.of_dataset")
async def dataset_tags(dataset_id: str, request: Request, p: Principal = require(Perm.DATASETS_READ)) -> dict:
    await gw(request).rag.get_dataset(p.tenant_id, dataset_id)
    found = (await tags(request).of_targets(p.tenant_id, [dataset_id]))[dataset_id]
    return {"data": [{"id": t["id"], "name": t["name"]} for t in found], "total": len(found)}


# ---- metadata -------------------------------------------------------------------------------

@router.post("/{dataset_id}/metadata", status_code=201, name="datasets.metadata.create")
async def create_metadata(dataset_id: str, body: MetadataCreate, request: Request,
                          p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    return await metadata(request).create(p.tenant_id, dataset_id, body.name, body.type)


@router.get("/{dataset_id}/metadata", name="datasets.metadata.list")
async def list_metadata(dataset_id: str, request: Request, p: Principal = require(Perm.DATASETS_READ)) -> dict:
    return await metadata(request).listing(p.tenant_id, dataset_id)


@router.get("/{dataset_id}/metadata/built-in", name="datasets.metadata.built_in")
async def built_in_fields(dataset_id: str, request: Request, p: Principal = require(Perm.DATASETS_READ)) -> dict:
    await gw(request).rag.get_dataset(p.tenant_id, dataset_id)
    return {"fields": [{"name": name, "type": kind} for name, kind in BUILT_IN.items()]}


@router.post("/{dataset_id}/metadata/built-in/{action}", name="datasets.metadata.built_in_toggle")
async def toggle_built_in(dataset_id: str, action: Literal["enable", "disable"], request: Request,
                          p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    await metadata(request).set_built_in(p.tenant_id, dataset_id, action == "enable")
    return {"result": "success"}


@router.patch("/{dataset_id}/metadata/{metadata_id}", name="datasets.metadata.update")
async def rename_metadata(dataset_id: str, metadata_id: str, body: MetadataRename, request: Request,
                          p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    return await metadata(request).rename(p.tenant_id, dataset_id, metadata_id, body.name)


@router.delete("/{dataset_id}/metadata/{metadata_id}", status_code=204, name="datasets.metadata.delete")
async def delete_metadata(dataset_id: str, metadata_id: str, request: Request,
                          p: Principal = require(Perm.DATASETS_WRITE)) -> Response:
    await metadata(request).delete(p.tenant_id, dataset_id, metadata_id)
    return Response(status_code=204)


@router.post("/{dataset_id}/documents/metadata", name="datasets.documents.metadata")
async def documents_metadata(dataset_id: str, body: MetadataOperations, request: Request,
                             p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    await metadata(request).update_documents(p.tenant_id, dataset_id,
                                             [op.model_dump() for op in body.operation_data])
    return {"result": "success"}


# ---- child chunks (parent-child documents) --------------------------------------------------

_CHILDREN = "/{dataset_id}/documents/{document_id}/segments/{segment_id}/child_chunks"


@router.get(_CHILDREN, name="segments.child_chunks.list")
async def list_child_chunks(dataset_id: str, document_id: str, segment_id: str, request: Request,
                            p: Principal = require(Perm.DATASETS_READ), page: int = Query(1, ge=1, le=100_000),
                            limit: int = Query(20, ge=1, le=100), keyword: str = Query("", max_length=200)) -> dict:
    return await gw(request).rag.child_chunks(p.tenant_id, dataset_id, document_id, segment_id, keyword, page, limit)


@router.post(_CHILDREN, name="segments.child_chunks.create")
async def add_child_chunk(dataset_id: str, document_id: str, segment_id: str, body: ChildChunk, request: Request,
                          p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    return await gw(request).rag.add_child_chunk(p.tenant_id, dataset_id, document_id, segment_id, body.content)


@router.patch(_CHILDREN + "/{child_chunk_id}", name="segments.child_chunks.update")
async def update_child_chunk(dataset_id: str, document_id: str, segment_id: str, child_chunk_id: str,
                             body: ChildChunk, request: Request, p: Principal = require(Perm.DATASETS_WRITE)) -> dict:
    return await gw(request).rag.update_child_chunk(p.tenant_id, dataset_id, document_id, segment_id,
                                                    child_chunk_id, body.content)


@router.delete(_CHILDREN + "/{child_chunk_id}", status_code=204, name="segments.child_chunks.delete")
async def delete_child_chunk(dataset_id: str, document_id: str, segment_id: str, child_chunk_id: str,
                             request: Request, p: Principal = require(Perm.DATASETS_WRITE)) -> Response:
    rag = gw(request).rag
    await rag.sibling(p.tenant_id, dataset_id, document_id, segment_id, child_chunk_id)
    await rag.delete_segment(p.tenant_id, dataset_id, document_id, child_chunk_id)
    return Response(status_code=204)
