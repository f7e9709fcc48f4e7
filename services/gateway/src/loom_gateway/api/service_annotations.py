"""Service API (Dify-compatible, app keys): the app's annotations and its annotation reply.

    GET/POST       /v1/apps/annotations                   list (page, limit, keyword), create
    PUT/DELETE     /v1/apps/annotations/{annotation_id}   update, delete
    POST           /v1/apps/annotation-reply/{action}     enable | disable (threshold, embedding model)
    GET            /v1/apps/annotation-reply/{action}/status/{job_id}

The matching itself happens when a chat message arrives (service_runs.chat, store/annotations.py).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from loom_gateway.api.deps import gw, require
from loom_gateway.domain.rbac import Perm, Principal
from loom_gateway.store.annotations import MAX_TEXT, Annotations

router = APIRouter(prefix="/v1/apps", tags=["service api: annotations"])


class AnnotationBody(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_TEXT)
    answer: str = Field(min_length=1, max_length=MAX_TEXT)


class ReplyBody(BaseModel):
    score_threshold: float | None = Field(None, ge=0, le=1, description="cosine similarity 0..1 (enable)")
    embedding_provider_name: str = Field("", max_length=200)
    embedding_model_name: str | None = Field(None, max_length=200, description="default: the workspace's "
                                             "embedding model")


def annotations(request: Request) -> Annotations:
    g = gw(request)
    assert g.annotations is not None
    return g.annotations


async def set_reply(request: Request, tenant_id: str, app_id: str, action: str, body: ReplyBody) -> dict:
    g = gw(request)
    model = body.embedding_model_name or await g.workspace_settings.embedding_model(tenant_id)
    return await annotations(request).set_reply(tenant_id, app_id, action, score_threshold=body.score_threshold,
                                                provider=body.embedding_provider_name, model=model)


@router.get("/annotations", name="service.annotations.list")
async def list_annotations(request: Request, p: Principal = require(Perm.APP_RUN),
                           page: int = Query(1, ge=1, le=100_000), limit: int = Query(20, ge=1, le=100),
                           keyword: str = Query("", max_length=200)) -> dict:
    return await annotations(request).page(p.tenant_id, p.app_id, page, limit, keyword)


@router.post("/annotations", name="service.annotations.create")
async def create_annotation(body: AnnotationBody, request: Request, p: Principal = require(Perm.APP_RUN)) -> dict:
    return await annotations(request).create(p.tenant_id, p.app_id, body.question, body.answer, p.actor_id)


@router.put("/annotations/{annotation_id}", name="service.annotations.update")
async def update_annotation(annotation_id: str, body: AnnotationBody, request: Request,
                            p: Principal = require(Perm.APP_RUN)) -> dict:
    return await annotations(request).update(p.tenant_id, p.app_id, annotation_id, body.question, body.answer)


@router.delete("/annotations/{annotation_id}", status_code=204, name="service.annotations.delete")
async def delete_annotation(annotation_id: str, request: Request, p: Principal = require(Perm.APP_RUN)) -> Response:
    await annotations(request).delete(p.tenant_id, p.app_id, annotation_id)
    return Response(status_code=204)


@router.post("/annotation-reply/{action}", name="service.annotation_reply")
async def annotation_reply(action: Literal["enable", "disable"], body: ReplyBody, request: Request,
                           p: Principal = require(Perm.APP_RUN)) -> dict:
    return await set_reply(request, p.tenant_id, p.app_id, action, body)


@router.get("/annotation-reply/{action}/status/{job_id}", name="service.annotation_reply_status")
async def annotation_reply_status(action: Literal["enable", "disable"], job_id: str, request: Request,
                                  p: Principal = require(Perm.APP_RUN)) -> dict:
    return await annotations(request).job(p.tenant_id, p.app_id, action, job_id)
