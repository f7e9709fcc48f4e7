"""Console: the app template catalogue (domain/templates.py): list it, install one in one call."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from loom_gateway.api.deps import gw, require
from loom_gateway.clients.tool_connections import ToolConnections
from loom_gateway.domain import templates
from loom_gateway.domain.rbac import Perm, Principal

router = APIRouter(prefix="/console/api/workspaces/{workspace_id}", tags=["console: templates"])

TemplateId = Path(max_length=63, pattern=templates.ID_RE.pattern)


class InstallBody(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=100, description="the app's name (default: the "
                             "template's)")
    model: str | None = Field(None, min_length=1, max_length=200, description="the chat model the app's "
                              "model nodes use (default: the workspace's chat model)")
    env: dict[str, str] = Field(default_factory=dict, max_length=50, description="values of the template's "
                                "settings (its `env`), by name")


def _templates(request: Request, connections: ToolConnections | None = None) -> templates.Templates:
    g = gw(request)
    return templates.Templates(g.settings.templates_dir or templates.default_root(), g.rag, g.apps, connections)


@router.get("/templates", name="templates.list")
async def list_templates(request: Request, p: Principal = require(Perm.APPS_READ)) -> dict:
    """The catalogue: `{data: [{id, name, description, mode, tags, datasets, tools, env, doc}]}`."""
    return {"data": await _templates(request).list()}


@router.post("/templates/{template_id}/install", status_code=201, name="templates.install")
async def install(request: Request, body: InstallBody | None = None, template_id: str = TemplateId,
                  p: Principal = require(Perm.APPS_WRITE)) -> dict:
    """Register the template's SQL connections with the tools service, create its datasets (their
    documents index in the background), then its app: `{template, app: {id, ...}, datasets: {key: dataset id}}`."""
    body = body or InstallBody()
    g = gw(request)
    chat_model = body.model or await g.workspace_settings.chat_model(p.tenant_id)
    async with ToolConnections(g.settings.tools_addr) as connections:
        out = await _templates(request, connections).install(
            p.tenant_id, p.account_id, template_id, name=body.name, chat_model=chat_model,
            embedding_model=await g.workspace_settings.embedding_model(p.tenant_id), env=body.env)
    request.state.audit_detail = {"template": template_id, "app_id": out["app"]["id"],
                                  "datasets": list(out["datasets"].values())}
    return out
