"""Console: first-run setup, login, token refresh, logout, own account, accepting invitations."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from loom_gateway.api.deps import current_account, gw
from loom_gateway.domain.rbac import Perm

router = APIRouter(prefix="/console/api", tags=["console: account"])


class SetupBody(BaseModel):
    email: str = Field(max_length=254)
    name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=8, max_length=256)
    workspace_name: str = Field("Default workspace", min_length=1, max_length=100)


class LoginBody(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=256)


class RefreshBody(BaseModel):
    refresh_token: str = Field(max_length=4096)


class AcceptBody(BaseModel):
    token: str = Field(max_length=200)
    name: str | None = Field(None, max_length=100)
    password: str = Field(max_length=256)


class WorkspaceBody(BaseModel):
    name: str = Field(min_length=1, max_length=100)


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.get("/setup", name="setup.status", openapi_extra={"x-loom-perm": "public"})
async def setup_status(request: Request) -> dict:
    return {"step": "finished" if await gw(request).accounts.setup_done() else "not_started"}


@router.post("/setup", status_code=201, name="setup.create", openapi_extra={"x-loom-perm": "public"})
async def setup(body: SetupBody, request: Request) -> dict:
    g = gw(request)
    account, workspace = await g.accounts.setup(body.email, body.name, body.password, body.workspace_name)
    await g.audit.record(None, "setup.create", tenant_id=workspace["id"], target_type="account",
                         target_id=account["id"], ip=_ip(request))
    session = await g.accounts.login(body.email, body.password)
    return {"result": "success", "account": account, "workspace": workspace, **session.body()}


@router.post("/login", name="auth.login", openapi_extra={"x-loom-perm": "public"})
async def login(body: LoginBody, request: Request) -> dict:
    return (await gw(request).accounts.login(body.email, body.password, ip=_ip(request))).body()


@router.post("/refresh-token", name="auth.refresh", openapi_extra={"x-loom-perm": "public"})
async def refresh(body: RefreshBody, request: Request) -> dict:
    return (await gw(request).accounts.refresh(body.refresh_token)).body()


@router.post("/logout", name="auth.logout", openapi_extra={"x-loom-perm": Perm.ACCOUNT.value})
async def logout(request: Request, account_id: str = Depends(current_account)) -> dict:
    await gw(request).accounts.logout(request.state.session_id)
    return {"result": "success"}


@router.get("/account", name="account.profile", openapi_extra={"x-loom-perm": Perm.ACCOUNT.value})
async def profile(request: Request, account_id: str = Depends(current_account)) -> dict:
    return await gw(request).accounts.profile(account_id)


@router.get("/workspaces", name="workspaces.list", openapi_extra={"x-loom-perm": Perm.ACCOUNT.value})
async def my_workspaces(request: Request, account_id: str = Depends(current_account)) -> dict:
    return {"data": await gw(request).accounts.workspaces(account_id)}


@router.post("/workspaces", status_code=201, name="workspaces.create",
             openapi_extra={"x-loom-perm": Perm.ACCOUNT.value})
async def create_workspace(body: WorkspaceBody, request: Request, account_id: str = Depends(current_account)
                           ) -> dict:
    g = gw(request)
    ws = await g.accounts.create_workspace(account_id, body.name)
    from loom_gateway.domain.rbac import Principal, Role

    await g.audit.record(Principal("account", ws["id"], Role.OWNER, account_id=account_id), "workspaces.create",
                         target_type="workspace", target_id=ws["id"], ip=_ip(request))
    return ws


@router.post("/invitations/accept", name="invitations.accept", openapi_extra={"x-loom-perm": "public"})
async def accept(body: AcceptBody, request: Request) -> dict:
    g = gw(request)
    session, tenant_id = await g.accounts.accept(body.token, body.name, body.password)
    await g.audit.record(None, "invitations.accept", tenant_id=tenant_id, target_type="account",
                         target_id=session.account_id, ip=_ip(request))
    return {**session.body(), "workspace_id": tenant_id}
