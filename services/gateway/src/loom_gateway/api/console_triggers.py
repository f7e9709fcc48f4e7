"""Console: a workflow app's triggers, its schedule (cron + time zone) and its webhook (URL and
signing secret, shown once). Editors and above change them; every change is audited (deps.require)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from loom_common.dsl.inputs import InputError, check_inputs
from loom_gateway.api.deps import gw, require
from loom_gateway.domain.errors import BadRequest
from loom_gateway.domain.rbac import Perm, Principal

router = APIRouter(prefix="/console/api/workspaces/{workspace_id}/apps/{app_id}/triggers",
                   tags=["console: triggers"])


class ScheduleBody(BaseModel):
    cron: str = Field(min_length=1, max_length=100, description="Five fields: minute hour day month weekday",
                      examples=["0 9 * * 1-5"])
    timezone: str = Field("UTC", min_length=1, max_length=64, description="IANA name, e.g. Europe/Paris")
    inputs: dict[str, Any] = Field(default_factory=dict, description="The inputs each scheduled run gets")
    enabled: bool = True


@router.get("", name="triggers.get")
async def get_triggers(app_id: str, request: Request, p: Principal = require(Perm.APPS_READ)) -> dict:
    g = gw(request)
    await g.apps.get(p.tenant_id, app_id)  # 404 for another workspace's app
    return {"schedule": await g.schedules.get(p.tenant_id, app_id),
            "webhook": await g.webhooks.get(p.tenant_id, app_id)}


@router.put("/schedule", name="triggers.schedule_put")
async def put_schedule(app_id: str, body: ScheduleBody, request: Request, p: Principal = require(Perm.APPS_WRITE)
                       ) -> dict:
    """Set the schedule (the app must be a published workflow; its inputs fit its start node)."""
    g = gw(request)
    await g.apps.get(p.tenant_id, app_id)  # 404 for an unknown app or another workspace's
    app = await g.triggers.form_of(p.tenant_id, app_id)
    try:
        inputs = check_inputs(app.form, body.inputs)
    except InputError as exc:
        raise BadRequest(str(exc), field=f"inputs.{exc.variable}") from None
    return await g.schedules.put(p.tenant_id, app_id, cron=body.cron.strip(), timezone=body.timezone.strip(),
                                 inputs=inputs, enabled=body.enabled)


@router.delete("/schedule", status_code=204, name="triggers.schedule_delete")
async def delete_schedule(app_id: str, request: Request, p: Principal = require(Perm.APPS_WRITE)) -> Response:
    await gw(request).schedules.delete(p.tenant_id, app_id)
    return Response(status_code=204)


@router.post("/webhook", status_code=201, name="triggers.webhook_make")
async def make_webhook(app_id: str, request: Request, p: Principal = require(Perm.APPS_WRITE)) -> dict:
    """Create the app's webhook or rotate its secret (the URL stays). The answer holds the
    secret: the only time it is shown."""
    g = gw(request)
    await g.apps.get(p.tenant_id, app_id)  # 404 for an unknown app or another workspace's
    await g.triggers.form_of(p.tenant_id, app_id)
    return await g.webhooks.make(p.tenant_id, app_id)


@router.delete("/webhook", status_code=204, name="triggers.webhook_delete")
async def delete_webhook(app_id: str, request: Request, p: Principal = require(Perm.APPS_WRITE)) -> Response:
    await gw(request).webhooks.delete(p.tenant_id, app_id)
    return Response(status_code=204)
