"""Console: one workspace, its members, invitations, limits and audit log."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from loom_gateway.api.deps import gw, require
from loom_gateway.domain.rbac import Perm, Principal
from loom_gateway.store.audit import AuditQuery

router = APIRouter(prefix="/console/api/workspaces/{workspace_id}", tags=["console: workspace"])


class WorkspacePatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    rpm_limit: int | None = Field(None, ge=0, le=10_000_000)
    tokens_per_day: int | None = Field(None, ge=0, le=10**12)


class RoleBody(BaseModel):
    role: str = Field(max_length=32)


class InviteBody(BaseModel):
    email: str = Field(max_length=254)
    role: str = Field("normal", max_length=32)


class AuditSettingsBody(BaseModel):
    """Fields left out stay as they are."""

    retention_days: int | None = Field(None, ge=1, le=3650)
    record_key_usage: bool | None = Field(None, description="API key usage entries (once per key and minute)")


@router.get("", name="workspace.get")
async def get_workspace(request: Request, p: Principal = require(Perm.WORKSPACE_READ)) -> dict:
    return {**await gw(request).accounts.workspace(p.tenant_id), "role": p.role.value}


@router.patch("", name="workspace.update")
async def update_workspace(body: WorkspacePatch, request: Request, p: Principal = require(Perm.WORKSPACE_MANAGE)
                           ) -> dict:
    return await gw(request).accounts.update_workspace(p.tenant_id, name=body.name, rpm_limit=body.rpm_limit,
                                                       tokens_per_day=body.tokens_per_day)


@router.delete("", status_code=204, name="workspace.delete")
async def delete_workspace(request: Request, p: Principal = require(Perm.WORKSPACE_DELETE)) -> Response:
    await gw(request).audit.record(p, "workspace.delete", target_type="workspace", target_id=p.tenant_id)
    await gw(request).accounts.delete_workspace(p.tenant_id)
    return Response(status_code=204)


@router.get("/members", name="members.list")
async def members(request: Request, p: Principal = require(Perm.MEMBERS_READ)) -> dict:
    return {"data": await gw(request).accounts.members(p.tenant_id)}


@router.patch("/members/{account_id}", name="members.update_role")
async def set_role(account_id: str, body: RoleBody, request: Request, p: Principal = require(Perm.MEMBERS_MANAGE)
                   ) -> dict:
    await gw(request).accounts.set_role(p.tenant_id, p.role, account_id, body.role)
    return {"result": "success"}


@router.delete("/members/{account_id}", status_code=204, name="members.remove")
async def remove_member(account_id: str, request: Request, p: Principal = require(Perm.MEMBERS_MANAGE)) -> Response:
    await gw(request).accounts.remove_member(p.tenant_id, p.role, account_id)
    return Response(status_code=204)


@router.get("/invitations", name="invitations.list")
async def invitations(request: Request, p: Principal = require(Perm.MEMBERS_MANAGE)) -> dict:
    return {"data": await gw(request).accounts.invitations(p.tenant_id)}


@router.post("/invitations", status_code=201, name="invitations.create")
async def invite(body: InviteBody, request: Request, p: Principal = require(Perm.MEMBERS_MANAGE)) -> dict:
    return await gw(request).accounts.invite(p.tenant_id, p.account_id, body.email, body.role)


@router.get("/usage", name="workspace.usage")
async def usage(request: Request, p: Principal = require(Perm.WORKSPACE_READ)) -> dict:
    return await gw(request).limits.usage(f"tenant:{p.tenant_id}")


@router.get("/audit-logs", name="audit.query")
async def audit_logs(request: Request, p: Principal = require(Perm.AUDIT_READ),
                     action: str | None = Query(None, max_length=200),
                     actor_id: str | None = Query(None, max_length=100),
                     target_id: str | None = Query(None, max_length=100),
                     since: datetime | None = None, until: datetime | None = None,
                     before_id: int | None = Query(None, ge=0, le=2**62),
                     limit: int = Query(50, ge=1, le=500)) -> dict:
    rows = await gw(request).audit.query(p.tenant_id, AuditQuery(action, actor_id, target_id, since, until, limit,
                                                                 before_id))
    return {"data": rows, "limit": limit, "has_more": len(rows) == limit}


@router.get("/audit-settings", name="audit.settings")
async def audit_settings(request: Request, p: Principal = require(Perm.AUDIT_READ)) -> dict:
    """{retention_days, record_key_usage, record_console_changes (always true)}"""
    return await gw(request).audit.settings(p.tenant_id)


@router.put("/audit-settings", name="audit.update_settings")
async def set_audit_settings(body: AuditSettingsBody, request: Request, p: Principal = require(Perm.AUDIT_MANAGE)
                             ) -> dict:
    return await gw(request).audit.set_settings(p.tenant_id, body.retention_days, body.record_key_usage)
