"""Service API (Dify-compatible, app keys): conversations, messages, feedback, files,
parameters, info and meta of the key's app."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field, JsonValue

from loom_gateway.api.deps import gw, require
from loom_gateway.domain import dsl, model_calls, naming, suggestions
from loom_gateway.domain.errors import BadRequest, wrong_app_mode
from loom_gateway.domain.rbac import Perm, Principal
from loom_gateway.store.apps import dify_mode

router = APIRouter(prefix="/v1", tags=["service api: app"])

SortBy = str


class RenameBody(BaseModel):
    name: str | None = Field(None, max_length=200)
    auto_generate: bool = False
    user: str = Field(min_length=1, max_length=255)


class UserBody(BaseModel):
    user: str = Field(min_length=1, max_length=255)


class FeedbackBody(BaseModel):
    rating: str | None = Field(None, max_length=20)
    user: str = Field(min_length=1, max_length=255)
    content: str | None = Field(None, max_length=10_000)


@router.get("/conversations", name="service.conversations")
async def conversations(request: Request, p: Principal = require(Perm.APP_RUN),
                        user: str = Query(min_length=1, max_length=255),
                        last_id: str | None = Query(None, max_length=64), limit: int = Query(20, ge=1, le=100),
                        sort_by: str = Query("-updated_at", max_length=20), pinned: str | None = None) -> dict:
    return await gw(request).conversations.list(p.app_id, user, last_id, limit, sort_by)


@router.post("/conversations/{conversation_id}/name", name="service.conversation_rename")
async def rename(conversation_id: str, body: RenameBody, request: Request, p: Principal = require(Perm.APP_RUN)
                 ) -> dict:
    g, name = gw(request), body.name
    if body.auto_generate:  # the model names it from the first query (naming.py has the fallbacks)
        query = await g.conversations.first_query(p.app_id, body.user, conversation_id)
        _, doc = await _app(request, p)
        name, tokens = await naming.name_conversation(
            g.inference, model_calls.app_model(doc) or await g.workspace_settings.chat_model(p.tenant_id), query,
            p.tenant_id)
        await g.limits.charge_tokens(p, tokens)
    return await g.conversations.rename(p.app_id, body.user, conversation_id, name)


@router.get("/conversations/{conversation_id}/variables", name="service.conversation_variables")
async def conversation_variables(conversation_id: str, request: Request, p: Principal = require(Perm.APP_RUN),
                                 user: str = Query(min_length=1, max_length=255),
                                 last_id: str | None = Query(None, max_length=64),
                                 limit: int = Query(20, ge=1, le=100),
                                 variable_name: str | None = Query(None, max_length=255)) -> dict:
    """A chatflow conversation's variables (Dify's conversation variables API)."""
    declared = await _declared_variables(request, p)
    return await gw(request).conversations.variables(p.app_id, user, conversation_id, declared, last_id, limit,
                                                     variable_name)


class VariableBody(BaseModel):
    value: JsonValue
    user: str = Field(min_length=1, max_length=255)


@router.put("/conversations/{conversation_id}/variables/{variable_id}", name="service.conversation_variable_set")
async def set_conversation_variable(conversation_id: str, variable_id: str, body: VariableBody, request: Request,
                                    p: Principal = require(Perm.APP_RUN)) -> dict:
    """Set a chatflow conversation's variable; its next turn runs with the new value."""
    declared = await _declared_variables(request, p)
    return await gw(request).conversations.set_variable(p.app_id, body.user, conversation_id, declared,
                                                        variable_id, body.value)


async def _declared_variables(request: Request, p: Principal) -> list[dict]:
    """The conversation variables the key's app declares (chat modes only)."""
    doc = await _chat_app(request, p)
    return ((doc.get("workflow") or {}).get("graph") or {}).get("conversation_variables") or []


@router.delete("/conversations/{conversation_id}", name="service.conversation_delete")
async def delete_conversation(conversation_id: str, body: UserBody, request: Request,
                              p: Principal = require(Perm.APP_RUN)) -> dict:
    await gw(request).conversations.delete(p.app_id, body.user, conversation_id)
    return {"result": "success"}


@router.get("/messages", name="service.messages")
async def messages(request: Request, p: Principal = require(Perm.APP_RUN),
                   user: str = Query(min_length=1, max_length=255),
                   conversation_id: str | None = Query(None, max_length=64),
                   first_id: str | None = Query(None, max_length=64), limit: int = Query(20, ge=1, le=100)) -> dict:
    g = gw(request)
    return await g.conversations.messages(p.app_id, user, conversation_id, first_id, limit)


@router.post("/messages/{message_id}/feedbacks", name="service.feedback")
async def feedback(message_id: str, body: FeedbackBody, request: Request, p: Principal = require(Perm.APP_RUN)
                   ) -> dict:
    await gw(request).conversations.feedback(p.app_id, body.user, message_id, body.rating, body.content)
    return {"result": "success"}


@router.get("/app/feedbacks", name="service.app_feedbacks")
async def app_feedbacks(request: Request, p: Principal = require(Perm.APP_RUN), page: int = Query(1, ge=1, le=10_000),
                        limit: int = Query(20, ge=1, le=101)) -> dict:
    return await gw(request).conversations.feedbacks(p.app_id, page, limit)


@router.get("/end-users/{end_user_id}", name="service.end_user")
async def end_user(end_user_id: str, request: Request, p: Principal = require(Perm.APP_RUN)) -> dict:
    """Dify's end-user detail, scoped to the key's app (another app's end user: 404)."""
    return await gw(request).conversations.end_user_detail(p.tenant_id, p.app_id, end_user_id[:64])


@router.post("/files/upload", status_code=201, name="service.file_upload")
async def upload(request: Request, file: UploadFile = File(...), user: str = Form(min_length=1, max_length=255),
                 p: Principal = require(Perm.APP_RUN)) -> dict:
    g = gw(request)
    end_user = await g.conversations.end_user(p.tenant_id, p.app_id, user)
    data = await file.read(g.settings.max_upload_bytes + 1)
    return await g.files.upload(p.tenant_id, p.app_id, end_user, file.filename or "", data, file.content_type)


@router.get("/files/{file_id}/preview", name="service.file_preview")
async def preview(file_id: str, request: Request, p: Principal = require(Perm.APP_RUN)) -> Response:
    meta, data = await gw(request).files.read(p.tenant_id, file_id)
    return Response(data, media_type=meta["mime_type"])


@router.get("/messages/{message_id}/suggested", name="service.suggested")
async def suggested(message_id: str, request: Request, p: Principal = require(Perm.APP_RUN),
                    user: str = Query(min_length=1, max_length=255)) -> dict:
    """Questions the user may ask next (the app's suggested_questions_after_answer feature)."""
    g = gw(request)
    doc = await _chat_app(request, p)
    turns = await g.conversations.turns_until(p.app_id, user, message_id, suggestions.TURNS)
    if not suggestions.enabled(doc):
        raise BadRequest("Suggested Questions Is Disabled.", code="bad_request")
    model = model_calls.app_model(doc) or await g.workspace_settings.chat_model(p.tenant_id)
    questions, tokens = await suggestions.suggest(g.inference, model, turns, p.tenant_id)
    await g.limits.charge_tokens(p, tokens)
    return {"result": "success", "data": questions}


async def _app(request: Request, p: Principal) -> tuple[str, dict]:
    """The key's app: its mode and DSL."""
    return await gw(request).apps.for_key(p.tenant_id, p.app_id, p.app_version)


async def _chat_app(request: Request, p: Principal) -> dict:
    """The key's app's DSL, when it is a chat app (Dify's not_chat_app otherwise)."""
    mode, doc = await _app(request, p)
    if mode not in dsl.CHAT_MODES:
        raise wrong_app_mode("not_chat_app")
    return doc


@router.get("/parameters", name="service.parameters")
async def parameters(request: Request, p: Principal = require(Perm.APP_RUN), user: str | None = Query(None)) -> dict:
    g = gw(request)
    _, doc = await _app(request, p)
    cfg = (doc.get("workflow") or {}).get("features") or {}
    return {"opening_statement": cfg.get("opening_statement", ""),
            "suggested_questions": cfg.get("suggested_questions", []),
            "suggested_questions_after_answer": {"enabled": suggestions.enabled(doc)},
            "speech_to_text": {"enabled": False},
            "text_to_speech": {"enabled": False}, "retriever_resource": {"enabled": True},
            "annotation_reply": {"enabled": False}, "more_like_this": {"enabled": False},
            "sensitive_word_avoidance": {"enabled": False}, "user_input_form": dsl.user_input_form(doc),
            "file_upload": {"image": {"enabled": False, "number_limits": 3, "transfer_methods": ["local_file"]}},
            "system_parameters": {"file_size_limit": g.settings.max_upload_bytes // (1024 * 1024),
                                  "image_file_size_limit": 10, "audio_file_size_limit": 50,
                                  "video_file_size_limit": 100, "workflow_file_upload_limit": 10}}


@router.get("/info", name="service.info")
async def info(request: Request, p: Principal = require(Perm.APP_RUN)) -> dict:
    app = await gw(request).apps.get(p.tenant_id, p.app_id)
    return {"name": app["name"], "description": app["description"], "tags": [],
            "mode": dify_mode(app["mode"]), "author_name": ""}


@router.get("/site", name="service.site")
async def site(request: Request, p: Principal = require(Perm.APP_RUN)) -> dict:
    """The app's WebApp settings (Dify's /site): what a chat page shows of the app."""
    app = await gw(request).apps.get(p.tenant_id, p.app_id)
    return {"title": app["name"], "chat_color_theme": None, "chat_color_theme_inverted": False,
            "icon_type": "emoji", "icon": app.get("icon") or "", "icon_background": None, "icon_url": None,
            "description": app["description"], "copyright": None, "privacy_policy": None, "custom_disclaimer": "",
            "default_language": "en-US", "show_workflow_steps": app["mode"] in ("chatflow", "workflow"),
            "use_icon_as_answer_icon": False}


@router.get("/meta", name="service.meta")
async def meta(request: Request, p: Principal = require(Perm.APP_RUN)) -> dict:
    return {"tool_icons": {}}
