"""Console: the human-input forms of an app's paused run (the run view and the debugger show
them) and answering one (editors and above; audit-logged as `runs.human_input`).

    GET  .../apps/{app_id}/runs/{run_id}/human-inputs
    POST .../apps/{app_id}/runs/{run_id}/human-inputs/{form_id}   {inputs, action}
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from loom_gateway.api.deps import gw, require
from loom_gateway.domain import human_inputs
from loom_gateway.domain.rbac import Perm, Principal

router = APIRouter(prefix="/console/api/workspaces/{workspace_id}", tags=["console: human input"])

RunId = Path(max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
FormId = Path(max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")


class AnswerBody(BaseModel):
    inputs: dict[str, Any] = Field(default_factory=dict, description="a value per form field, by name")
    action: str | None = Field(None, max_length=20, description="the button (one of the form's user_actions)")


@router.get("/apps/{app_id}/runs/{run_id}/human-inputs", name="apps.run_human_inputs")
async def open_forms(app_id: str, request: Request, run_id: str = RunId,
                     p: Principal = require(Perm.RUNS_READ)) -> dict:
    g = gw(request)
    await g.apps.get(p.tenant_id, app_id)
    return {"data": await human_inputs.pending(g.execution, p.tenant_id, app_id, run_id)}


@router.post("/apps/{app_id}/runs/{run_id}/human-inputs/{form_id}", name="apps.run_human_input_submit")
async def submit(app_id: str, body: AnswerBody, request: Request, run_id: str = RunId, form_id: str = FormId,
                 p: Principal = require(Perm.APPS_WRITE)) -> dict:
    g = gw(request)
    await g.apps.get(p.tenant_id, app_id)
    out = await human_inputs.submit(g.execution, tenant_id=p.tenant_id, app_id=app_id, run_id=run_id,
                                    form_id=form_id, inputs=body.inputs, action=body.action,
                                    answered_by=f"console:{p.account_id}", channel="console")
    await g.audit.record(p, "runs.human_input", target_type="run", target_id=run_id,
                         detail={"form_id": form_id, "action": out["action"], "fields": sorted(out["inputs"])},
                         ip=request.client.host if request.client else None)
    return out
