"""Console: an app's annotations and annotation reply (Dify's console routes, under the
workspace): the same domain as the service API's /v1/apps/annotations, plus the reply's
settings and an annotation's hit history. Reading needs apps.read; changes need apps.write."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response

from loom_gateway.api.deps import gw, require
from loom_gateway.api.service_annotations import AnnotationBody, ReplyBody, annotations, set_reply
from loom_gateway.domain.rbac import Perm, Principal

router = APIRouter(prefix="/console/api/workspaces/{workspace_id}/apps/{app_id}", tags=["console: annotations"])


async def _app(request: Request, p: Principal, app_id: str) -> str:
    await gw(request).apps.get(p.tenant_id, app_id)  # 404 for an app of another workspace
    return app_id


@router.get("/annotations", name="annotations.list")
async def list_annotations(app_id: str, request: Request, p: Principal = require(Perm.APPS_READ),
                           page: int = Query(1, ge=1, le=100_000), limit: int = Query(20, ge=1, le=100),
                           keyword: str = Query("", max_length=200)) -> dict:
    return await annotations(request).page(p.tenant_id, await _app(request, p, app_id), page, limit, keyword)


@router.post("/annotations", name="annotations.create")
async def create_annotation(app_id: str, body: AnnotationBody, request: Request,
                            p: Principal = require(Perm.APPS_WRITE)) -> dict:
    return await annotations(request).create(p.tenant_id, await _app(request, p, app_id), body.question,
                                              body.answer, p.actor_id)


@router.put("/annotations/{annotation_id}", name="annotations.update")
async def update_annotation(app_id: str, annotation_id: str, body: AnnotationBody, request: Request,
                            p: Principal = require(Perm.APPS_WRITE)) -> dict:
    return await annotations(request).update(p.tenant_id, await _app(request, p, app_id), annotation_id,
                                              body.question, body.answer)


@router.delete("/annotations/{annotation_id}", status_code=204, name="annotations.delete")
async def delete_annotation(app_id: str, annotation_id: str, request: Request,
                            p: Principal = require(Perm.APPS_WRITE)) -> Response:
    await annotations(request).delete(p.tenant_id, await _app(request, p, app_id), annotation_id)
    return Response(status_code=204)


@router.get("/annotations/{annotation_id}/hit-histories", name="annotations.hits")
async def annotation_hits(app_id: str, annotation_id: str, request: Request, p: Principal = require(Perm.APPS_READ),
                          page: int = Query(1, ge=1, le=100_000), limit: int = Query(20, ge=1, le=100)) -> dict:
    return await annotations(request).hits(p.tenant_id, await _app(request, p, app_id), annotation_id, page, limit)


@router.get("/annotation-setting", name="annotations.setting")
async def annotation_setting(app_id: str, request: Request, p: Principal = require(Perm.APPS_READ)) -> dict:
    return await annotations(request).setting(p.tenant_id, await _app(request, p, app_id))


@router.post("/annotation-reply/{action}", name="annotations.reply")
async def annotation_reply(app_id: str, action: Literal["enable", "disable"], body: ReplyBody, request: Request,
                           p: Principal = require(Perm.APPS_WRITE)) -> dict:
    return await set_reply(request, p.tenant_id, await _app(request, p, app_id), action, body)


@router.get("/annotation-reply/{action}/status/{job_id}", name="annotations.reply_status")
async def annotation_reply_status(app_id: str, action: Literal["enable", "disable"], job_id: str, request: Request,
                                  p: Principal = require(Perm.APPS_READ)) -> dict:
    return await annotations(request).job(p.tenant_id, await _app(request, p, app_id), action, job_id)
