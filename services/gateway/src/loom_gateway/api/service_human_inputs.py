"""Service API (app keys): the human-input forms a paused run waits for, and answering one.

    GET  /v1/runs/{task_id}/human-inputs              the open forms (fields, actions, deadline)
    POST /v1/runs/{task_id}/human-inputs/{form_id}    {inputs, action, user}: resume the run

The run then goes on from the node with `inputs` as its outputs; follow it with
`GET /v1/runs/{task_id}/events` (Last-Event-ID: the paused event's id) or the run's detail.
Errors are listed in domain/human_inputs.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from loom_gateway.api.deps import gw, require
from loom_gateway.domain import human_inputs
from loom_gateway.domain.rbac import Perm, Principal

router = APIRouter(prefix="/v1", tags=["service api: human input"])

RunId = Path(max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
FormId = Path(max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")


class AnswerBody(BaseModel):
    inputs: dict[str, Any] = Field(default_factory=dict, description="a value per form field, by name")
    action: str | None = Field(None, max_length=20, description="the button: one of the form's user_actions "
                               "(may be left out when the form has none, or only one)")
    user: str = Field(min_length=1, max_length=255, description="who answers (recorded with the answer)")


@router.get("/runs/{task_id}/human-inputs", name="service.human_inputs")
async def open_forms(request: Request, task_id: str = RunId, p: Principal = require(Perm.APP_RUN)) -> dict:
    return {"data": await human_inputs.pending(gw(request).execution, p.tenant_id, p.app_id, task_id)}


@router.post("/runs/{task_id}/human-inputs/{form_id}", name="service.human_input_submit")
async def submit(body: AnswerBody, request: Request, task_id: str = RunId, form_id: str = FormId,
                 p: Principal = require(Perm.APP_RUN)) -> dict:
    return await human_inputs.submit(gw(request).execution, tenant_id=p.tenant_id, app_id=p.app_id, run_id=task_id,
                                     form_id=form_id, inputs=body.inputs, action=body.action,
                                     answered_by=f"service-api:{body.user}", channel="service-api")
