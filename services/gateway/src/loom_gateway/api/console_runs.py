"""Console: running an app's draft (the editor's debugger), one node of it, and a stored run's
events (its trace). The run path is the service API's; see domain/console_runs.py."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from loom_common.events import RunEvent
from loom_gateway.api import sse
from loom_gateway.api.deps import gw, require
from loom_gateway.domain import console_runs
from loom_gateway.domain.execution import Fold, StartedRun
from loom_gateway.domain.rbac import Perm, Principal

router = APIRouter(prefix="/console/api/workspaces/{workspace_id}", tags=["console: debug runs"])


class DraftRunBody(BaseModel):
    inputs: dict[str, Any] = Field(default_factory=dict)
    query: str | None = Field(None, max_length=100_000, description="chat, chatflow and agent apps: required")
    conversation_id: str | None = Field(None, max_length=64, description="continue a debugger conversation")
    files: list[dict[str, Any]] | None = Field(None, max_length=20)


class NodeRunBody(BaseModel):
    inputs: dict[str, Any] = Field(default_factory=dict, description="values keyed by the selector they stand "
                                   "for: 'node_id.variable' (e.g. 'start.city', 'sys.query')")


def _debug_user(p: Principal) -> str:
    """The end user a console member's debugger runs are recorded under (their own conversations)."""
    return f"console:{p.account_id}"


@router.post("/apps/{app_id}/draft/run", name="apps.draft_run")  # text/event-stream (openapi.py says so)
async def draft_run(app_id: str, body: DraftRunBody, request: Request, p: Principal = require(Perm.APPS_WRITE)):
    """Run the current draft (not the published version) and stream its events; recorded as a
    debugger run (`invoke_from` debugger) in the app's runs."""
    g = gw(request)
    app = await console_runs.draft_app(g.apps, p.tenant_id, app_id)
    kind = console_runs.run_kind(app.mode)
    query = body.query if kind != "completion" else (body.query or body.inputs.get("query"))
    # The debugger answers from annotations as the service API does (service_runs._start).
    hit = (await g.annotations.match(p.tenant_id, app_id, query)
           if kind == "chat" and g.annotations is not None and (query or "").strip() else None)
    run = await g.execution.start(app, kind=kind, user=_debug_user(p), inputs=body.inputs, query=query,
                                  conversation_id=body.conversation_id if kind == "chat" else None,
                                  files=body.files, response_mode="streaming", invoke_from="debugger",
                                  annotation_reply=hit.reply() if hit else None)
    if hit is not None and run.message_id:
        await g.annotations.record_hit(p.tenant_id, app_id, hit, run.message_id, query or "")
    return sse.response(sse.run_events(g, run), g.settings.ping_interval_s)


@router.post("/apps/{app_id}/draft/nodes/{node_id}/run", name="apps.draft_node_run")
async def draft_node_run(app_id: str, node_id: str, body: NodeRunBody, request: Request,
                         p: Principal = require(Perm.APPS_WRITE)) -> dict:
    """Run one node of the draft with hand-typed inputs (a one-node workflow through the usual
    run path); answers the node's `{status, inputs, outputs, error, elapsed_time, total_tokens}`."""
    g = gw(request)
    one = console_runs.single_node(await console_runs.draft_app(g.apps, p.tenant_id, app_id), node_id, body.inputs)
    run = await g.execution.start(one.app, kind="workflow", user=_debug_user(p), inputs=one.inputs,
                                  query=one.query, files=one.files, response_mode="blocking",
                                  invoke_from="single-node")
    fold = Fold()
    seen = [ev async for ev in sse.follow(g, run, fold, within_s=g.settings.blocking_timeout_s)]
    await sse.record(g, run, fold)
    return {**console_runs.node_result(node_id, seen, fold.error), "run_id": run.run_id}


@router.get("/apps/{app_id}/runs/{run_id}/events", name="apps.run_events")
async def run_events(app_id: str, run_id: str, request: Request, p: Principal = require(Perm.RUNS_READ)) -> dict:
    """A stored run's events, each as Dify's SSE payload (node events included for every mode),
    read back from the run's event stream (JetStream keeps it 7 days)."""
    g = gw(request)
    run = await g.execution.started(p.tenant_id, app_id, run_id)
    data: list[dict] = []
    truncated = False
    async with contextlib.aclosing(g.execution.bus.events(run_id, 0, follow=False)) as events:
        async for ev in events:
            payload = trace_payload(run, ev)
            if payload is None:
                continue
            if len(data) == console_runs.MAX_TRACE_EVENTS:
                truncated = True
                break
            data.append(payload)
    status = (await g.execution.owned_run(p.tenant_id, app_id, run_id))["status"]
    return {"data": data, "run_id": run_id, "status": status, "truncated": truncated}


def trace_payload(run: StartedRun, ev: RunEvent) -> dict[str, Any] | None:
    """A stored event as the console's trace shows it: Dify's SSE payload, node events included
    for every mode (the basic chat, agent and completion streams leave them out)."""
    if run.mode in ("chatflow", "workflow"):
        return sse.sse_payload(run, ev)
    return sse.sse_payload(replace(run, mode="chatflow", feed=None), ev)
