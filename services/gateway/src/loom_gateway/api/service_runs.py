"""Service API (Dify-compatible, app keys): chat-messages, completion-messages, workflows/run,
stopping a task, run details, and resuming a run's SSE stream (Loom extension)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, Field

from loom_common.ids import new_id
from loom_gateway.api import sse, timing
from loom_gateway.api.context import Gateway
from loom_gateway.api.deps import gw, require
from loom_gateway.domain import dsl
from loom_gateway.domain.errors import ApiError, BadRequest, wrong_app_mode
from loom_gateway.domain.execution import Fold, StartedRun
from loom_gateway.domain.rbac import Perm, Principal
from loom_gateway.store import run_logs

router = APIRouter(prefix="/v1", tags=["service api: runs"])

ResponseMode = Literal["streaming", "blocking"]


class ChatBody(BaseModel):
    query: str = Field(max_length=100_000)
    inputs: dict[str, Any] | None = None
    response_mode: ResponseMode | None = "blocking"
    conversation_id: str | None = Field(None, max_length=64)
    user: str = Field(min_length=1, max_length=255)
    files: list[dict[str, Any]] | None = None
    auto_generate_name: bool = True


class CompletionBody(BaseModel):
    inputs: dict[str, Any] | None = None
    query: str | None = Field(None, max_length=100_000)
    response_mode: ResponseMode | None = "blocking"
    user: str = Field(min_length=1, max_length=255)
    files: list[dict[str, Any]] | None = None


class WorkflowBody(BaseModel):
    inputs: dict[str, Any] = Field(default_factory=dict)
    response_mode: ResponseMode | None = "blocking"
    user: str = Field(min_length=1, max_length=255)
    files: list[dict[str, Any]] | None = None


class StopBody(BaseModel):
    user: str = Field(min_length=1, max_length=255)


async def _blocking(g: Gateway, run: StartedRun) -> dict:
    """The one blocking answer of a run (service API, OpenAI API, MCP, webhooks): its events
    followed to its end or pause within `blocking_timeout_s` (else a 504 run_timeout)."""
    fold = Fold()
    async for _ in sse.follow(g, run, fold, within_s=g.settings.blocking_timeout_s):
        pass
    await sse.record(g, run, fold)
    if not run.workflow_only and fold.status in ("failed",):
        raise ApiError(fold.error or "run failed", code=fold.error_code or "completion_request_error", status=400)
    return sse.blocking_body(run, fold)


async def _answer(g: Gateway, run: StartedRun, mode: str | None):
    if mode == "streaming":
        return sse.response(sse.run_events(g, run), g.settings.ping_interval_s)
    return await _blocking(g, run)


async def _start(request: Request, p: Principal, kind: str, *, version: int | None = None, **kw) -> StartedRun:
    g = gw(request)
    app = await (g.apps.published_version(p.tenant_id, p.app_id, version) if version is not None
                 else g.apps.published(p.tenant_id, p.app_id, p.app_version))
    timing.mark(request, "app")
    # Annotation reply: matched here, before dispatch (store/annotations.py says why); a hit
    # rides on the request and the orchestrator streams it without calling a model.
    hit = None
    if kind == "chat" and app.mode in dsl.CHAT_MODES and g.annotations is not None and (kw.get("query") or "").strip():
        hit = await g.annotations.match(p.tenant_id, p.app_id, kw["query"])
        if hit is not None:
            kw["annotation_reply"] = hit.reply()
    if kw.get("files"):  # uploaded files must be this workspace's (Dify's 400 otherwise)
        kw["files"] = await g.files.resolve(p.tenant_id, kw["files"])
    if kw.get("inputs"):  # and so must file inputs
        kw["inputs"] = await g.files.resolve_inputs(p.tenant_id, kw["inputs"])
    # The app's token budget is held of the quotas before the run is asked for; its end settles it.
    run_id = new_id()
    await g.limits.reserve(p, dsl.token_budget(app.dsl, g.settings.token_reservation_default), run_id=run_id)
    try:
        run = await g.execution.start(app, kind=kind, run_id=run_id, mark=lambda stage: timing.mark(request, stage),
                                      **kw)
    except BaseException:
        if p.token_quota:  # refused or failed before it ran: the tokens go back
            await asyncio.shield(g.limits.release_run(run_id))
        raise
    if hit is not None and run.message_id:  # the message records its annotation; the hit is counted
        await g.annotations.record_hit(p.tenant_id, p.app_id, hit, run.message_id, kw.get("query") or "")
    return run


@router.post("/chat-messages", name="service.chat")
async def chat(body: ChatBody, request: Request, p: Principal = require(Perm.APP_RUN)):
    run = await _start(request, p, "chat", user=body.user, inputs=body.inputs, query=body.query,
                       conversation_id=body.conversation_id or None, files=body.files,
                       response_mode=body.response_mode or "blocking")
    return await _answer(gw(request), run, body.response_mode)


@router.post("/completion-messages", name="service.completion")
async def completion(body: CompletionBody, request: Request, p: Principal = require(Perm.APP_RUN)):
    run = await _start(request, p, "completion", user=body.user, inputs=body.inputs,
                       query=body.query or (body.inputs or {}).get("query"), files=body.files,
                       response_mode=body.response_mode or "blocking")
    return await _answer(gw(request), run, body.response_mode)


@router.post("/workflows/run", name="service.workflow_run")
async def workflow_run(body: WorkflowBody, request: Request, p: Principal = require(Perm.APP_RUN)):
    run = await _start(request, p, "workflow", user=body.user, inputs=body.inputs, files=body.files,
                       response_mode=body.response_mode or "blocking")
    return await _answer(gw(request), run, body.response_mode)


@router.post("/workflows/{workflow_id}/run", name="service.workflow_run_version")
async def workflow_run_version(workflow_id: str, body: WorkflowBody, request: Request,
                               p: Principal = require(Perm.APP_RUN)):
    """Run one published version of the workflow (its number, as the console's version list
    shows it), current or older: Dify's POST /workflows/{workflow_id}/run."""
    if not workflow_id.isdigit() or not 0 < int(workflow_id) < 10**9:
        raise BadRequest("workflow_id is the number of a published version of this app", field="workflow_id")
    run = await _start(request, p, "workflow", version=int(workflow_id), user=body.user, inputs=body.inputs,
                       files=body.files, response_mode=body.response_mode or "blocking")
    return await _answer(gw(request), run, body.response_mode)


@router.get("/workflows/run/{workflow_run_id}", name="service.workflow_run_detail")
async def workflow_run_detail(workflow_run_id: str, request: Request, p: Principal = require(Perm.APP_RUN)) -> dict:
    return await gw(request).execution.run_detail(p.tenant_id, p.app_id, workflow_run_id)


@router.get("/workflows/logs", name="service.workflow_logs")
async def workflow_logs(request: Request, p: Principal = require(Perm.APP_RUN),
                        keyword: str | None = Query(None, max_length=200),
                        status: str | None = Query(None, max_length=20),
                        page: int = Query(1, ge=1, le=100_000), limit: int = Query(20, ge=1, le=100),
                        created_by_end_user_session_id: str | None = Query(None, max_length=255)) -> dict:
    """Dify's workflow logs: the app's runs, newest first (workflow apps)."""
    g = gw(request)
    if (await g.apps.for_key(p.tenant_id, p.app_id, p.app_version))[0] != "workflow":
        raise wrong_app_mode("not_workflow_app")

    async def read() -> dict:
        return await run_logs.page(g.reads.pool(p.tenant_id), p.tenant_id, p.app_id, status=status,
                                   keyword=keyword, session=created_by_end_user_session_id, page=page, limit=limit)

    return await read()


async def _stop(request: Request, p: Principal, task_id: str, body: StopBody) -> dict:
    await gw(request).execution.stop(p.tenant_id, p.app_id, task_id, body.user)
    return {"result": "success"}


@router.post("/chat-messages/{task_id}/stop", name="service.chat_stop")
async def chat_stop(task_id: str, body: StopBody, request: Request, p: Principal = require(Perm.APP_RUN)) -> dict:
    return await _stop(request, p, task_id, body)


@router.post("/completion-messages/{task_id}/stop", name="service.completion_stop")
async def completion_stop(task_id: str, body: StopBody, request: Request, p: Principal = require(Perm.APP_RUN)
                          ) -> dict:
    return await _stop(request, p, task_id, body)


@router.post("/workflows/tasks/{task_id}/stop", name="service.workflow_stop")
async def workflow_stop(task_id: str, body: StopBody, request: Request, p: Principal = require(Perm.APP_RUN)) -> dict:
    return await _stop(request, p, task_id, body)


@router.get("/runs/{task_id}/events", name="service.run_events")
async def resume(task_id: str, request: Request, p: Principal = require(Perm.APP_RUN),
                 last_event_id: str | None = Header(None, max_length=20)):
    """Loom extension: the run's SSE stream again, after the seq in `Last-Event-ID` (0 = from the start)."""
    g = gw(request)
    after = 0
    if last_event_id:
        if not last_event_id.isdigit():
            raise BadRequest("Last-Event-ID must be an event seq (a number)", field="Last-Event-ID")
        after = int(last_event_id)
    run = await g.execution.started(p.tenant_id, p.app_id, task_id)
    return sse.response(sse.run_events(g, run, after), g.settings.ping_interval_s)
