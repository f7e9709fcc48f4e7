"""Console: apps (CRUD, draft DSL, publish, versions, import/export), their API keys, runs and
conversations (the logs: messages with their end users' feedback), and the workspace's dataset
API keys."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from loom_gateway.api.deps import gw, require
from loom_gateway.domain import dsl
from loom_gateway.domain.rbac import Perm, Principal
from loom_gateway.store import limits
from loom_gateway.store.conversation_logs import ConversationFilter, ConversationLogs

router = APIRouter(prefix="/console/api/workspaces/{workspace_id}", tags=["console: apps"])

Mode = Literal["chat", "chatflow", "workflow", "agent", "completion"]


class AppCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    mode: Mode
    description: str = Field("", max_length=2000)
    icon: str = Field("", max_length=200)


class AppPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=2000)
    icon: str | None = Field(None, max_length=200)


class DraftBody(BaseModel):
    dsl: dict[str, Any]


class ImportBody(BaseModel):
    data: str = Field(min_length=1, max_length=5_000_000, description="The DSL as YAML (or JSON) text")
    name: str | None = Field(None, min_length=1, max_length=100)


class KeyBody(BaseModel):
    name: str = Field("", max_length=100)


class KeyLimits(BaseModel):
    """Only the fields sent change. A number >= 1 sets the limit; null makes it unlimited (the
    workspace owner only); 0 is refused (it used to mean unlimited)."""

    rpm_limit: int | None = Field(None, le=10_000_000)
    tokens_per_day: int | None = Field(None, le=10**12)


@router.get("/apps", name="apps.list")
async def list_apps(request: Request, p: Principal = require(Perm.APPS_READ), page: int = Query(1, ge=1, le=10_000),
                    limit: int = Query(20, ge=1, le=100), mode: Mode | None = None) -> dict:
    return await gw(request).apps.list(p.tenant_id, page, limit, mode)


@router.post("/apps", status_code=201, name="apps.create")
async def create_app(body: AppCreate, request: Request, p: Principal = require(Perm.APPS_WRITE)) -> dict:
    g = gw(request)
    return await g.apps.create(p.tenant_id, p.account_id, body.name, body.mode, body.description, body.icon,
                               chat_model=await g.workspace_settings.chat_model(p.tenant_id))


@router.post("/apps/import", status_code=201, name="apps.import")
async def import_app(body: ImportBody, request: Request, p: Principal = require(Perm.APPS_WRITE)) -> dict:
    return await gw(request).apps.import_dsl(p.tenant_id, p.account_id, body.data, body.name)


@router.get("/apps/{app_id}", name="apps.get")
async def get_app(app_id: str, request: Request, p: Principal = require(Perm.APPS_READ)) -> dict:
    return await gw(request).apps.get(p.tenant_id, app_id)


@router.patch("/apps/{app_id}", name="apps.update")
async def update_app(app_id: str, body: AppPatch, request: Request, p: Principal = require(Perm.APPS_WRITE)) -> dict:
    return await gw(request).apps.update(p.tenant_id, app_id, name=body.name, description=body.description,
                                         icon=body.icon)


@router.delete("/apps/{app_id}", status_code=204, name="apps.delete")
async def delete_app(app_id: str, request: Request, p: Principal = require(Perm.APPS_WRITE)) -> Response:
    await gw(request).apps.delete(p.tenant_id, app_id)
    return Response(status_code=204)


@router.get("/apps/{app_id}/draft", name="apps.draft")
async def get_draft(app_id: str, request: Request, p: Principal = require(Perm.APPS_READ)) -> dict:
    return {"dsl": await gw(request).apps.draft(p.tenant_id, app_id)}


@router.put("/apps/{app_id}/draft", name="apps.save_draft")
async def save_draft(app_id: str, body: DraftBody, request: Request, p: Principal = require(Perm.APPS_WRITE)) -> dict:
    return {"dsl": await gw(request).apps.save_draft(p.tenant_id, app_id, body.dsl)}


@router.post("/apps/{app_id}/publish", name="apps.publish")
async def publish(app_id: str, request: Request, p: Principal = require(Perm.APPS_WRITE)) -> dict:
    return await gw(request).apps.publish(p.tenant_id, app_id, p.account_id)


@router.get("/apps/{app_id}/versions", name="apps.versions")
async def versions(app_id: str, request: Request, p: Principal = require(Perm.APPS_READ)) -> dict:
    return {"data": await gw(request).apps.versions(p.tenant_id, app_id)}


@router.get("/apps/{app_id}/versions/{version}", name="apps.version")
async def version(app_id: str, request: Request, p: Principal = require(Perm.APPS_READ),
                  version: str = Path(max_length=20, pattern=r"^(draft|published|\d{1,9})$")) -> dict:
    """One version's document as JSON (secrets masked), e.g. for the editor to restore it as the draft."""
    return {"dsl": await gw(request).apps.version_dsl(p.tenant_id, app_id, version)}


@router.get("/apps/{app_id}/export", name="apps.export", response_class=PlainTextResponse)
async def export(app_id: str, request: Request, p: Principal = require(Perm.APPS_READ),
                 version: str = Query("draft", max_length=20, pattern=r"^(draft|published|\d{1,9})$")
                 ) -> PlainTextResponse:
    doc = await gw(request).apps.version_dsl(p.tenant_id, app_id, version)
    return PlainTextResponse(dsl.dump_yaml(doc), media_type="application/x-yaml")


@router.get("/apps/{app_id}/runs", name="apps.runs")
async def runs(app_id: str, request: Request, p: Principal = require(Perm.RUNS_READ),
               limit: int = Query(20, ge=1, le=100),
               invoke_from: Literal["service-api", "debugger", "single-node", "schedule", "webhook"] | None = Query(
                   None, description="only runs from there; default: all but single-node runs")) -> dict:
    await gw(request).apps.get(p.tenant_id, app_id)
    return {"data": await gw(request).execution.list_runs(p.tenant_id, app_id, limit, invoke_from)}


@router.get("/apps/{app_id}/conversations", name="apps.conversations")
async def conversations(app_id: str, request: Request, p: Principal = require(Perm.RUNS_READ),
                        keyword: str = Query("", max_length=200, description="in the name, a query or an answer"),
                        user: str = Query("", max_length=255, description="one end user (the id the app's "
                                          "caller sent; the console's own debugger runs: console:<account id>)"),
                        feedback: Literal["like", "dislike", "any"] | None = Query(
                            None, description="only conversations with a message rated so (any: rated at all)"),
                        page: int = Query(1, ge=1, le=100_000), limit: int = Query(20, ge=1, le=100)) -> dict:
    """Every end user's conversations with the app, most recently active first: `{data: [{id, name,
    status, end_user, message_count, likes, dislikes, created_at, updated_at}], total, page, limit,
    has_more}`."""
    g = gw(request)
    await g.apps.get(p.tenant_id, app_id)
    f = ConversationFilter(keyword.strip(), user.strip(), feedback, page, limit)
    return await ConversationLogs(g.conversations.pool).conversations(p.tenant_id, app_id, f)


@router.get("/apps/{app_id}/conversations/{conversation_id}/messages", name="apps.conversation_messages")
async def conversation_messages(app_id: str, conversation_id: str, request: Request,
                                p: Principal = require(Perm.RUNS_READ), limit: int = Query(100, ge=1, le=500)
                                ) -> dict:
    """A conversation's messages, oldest first, each with its run (for the trace) and the end
    user's feedback `{rating: like|dislike, content}` or null."""
    g = gw(request)
    await g.apps.get(p.tenant_id, app_id)
    return await ConversationLogs(g.conversations.pool).messages(p.tenant_id, app_id, conversation_id, limit)


@router.get("/apps/{app_id}/api-keys", name="app_keys.list")
async def list_app_keys(app_id: str, request: Request, p: Principal = require(Perm.APP_KEYS)) -> dict:
    await gw(request).apps.get(p.tenant_id, app_id)
    return {"data": await gw(request).apps.list_keys(p.tenant_id, "app", app_id)}


@router.post("/apps/{app_id}/api-keys", status_code=201, name="app_keys.create")
async def create_app_key(app_id: str, request: Request, body: KeyBody | None = None,
                         p: Principal = require(Perm.APP_KEYS)) -> dict:
    return await gw(request).apps.create_key(p.tenant_id, "app", app_id, p.account_id, body.name if body else "")


@router.patch("/apps/{app_id}/api-keys/{key_id}", name="app_keys.update")
async def limit_app_key(app_id: str, key_id: str, body: KeyLimits, request: Request,
                        p: Principal = require(Perm.APP_KEYS)) -> dict:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    limits.check_key_limits(p.role, changes)
    await gw(request).apps.update_key_limits(p.tenant_id, key_id, changes)
    return {"result": "success"}


@router.delete("/apps/{app_id}/api-keys/{key_id}", status_code=204, name="app_keys.delete")
async def delete_app_key(app_id: str, key_id: str, request: Request, p: Principal = require(Perm.APP_KEYS)
                         ) -> Response:
    await gw(request).apps.delete_key(p.tenant_id, "app", key_id, app_id)
    return Response(status_code=204)


@router.get("/dataset-api-keys", name="dataset_keys.list")
async def list_dataset_keys(request: Request, p: Principal = require(Perm.DATASET_KEYS)) -> dict:
    return {"data": await gw(request).apps.list_keys(p.tenant_id, "dataset", None)}


@router.post("/dataset-api-keys", status_code=201, name="dataset_keys.create")
async def create_dataset_key(request: Request, body: KeyBody | None = None,
                             p: Principal = require(Perm.DATASET_KEYS)) -> dict:
    return await gw(request).apps.create_key(p.tenant_id, "dataset", None, p.account_id, body.name if body else "")


@router.delete("/dataset-api-keys/{key_id}", status_code=204, name="dataset_keys.delete")
async def delete_dataset_key(key_id: str, request: Request, p: Principal = require(Perm.DATASET_KEYS)) -> Response:
    await gw(request).apps.delete_key(p.tenant_id, "dataset", key_id)
    return Response(status_code=204)
