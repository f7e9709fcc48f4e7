"""OpenAI-compatible API (app keys): /v1/chat/completions (tools, streaming), /v1/embeddings,
/v1/models, routed to inference's gRPC with the caller's key counted against its limits and
token quota. With `model` set to the key's app id, a chat completion runs the app (openai_apps.py).
Errors keep the gateway's shape `{code, message, status}` (the SDKs read any JSON body).
"""

from __future__ import annotations

import array
import asyncio
import base64
import json
import time
from collections.abc import AsyncGenerator
from typing import Any, Generic, Literal, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from loom_common.ids import new_id
from loom_common.logging import get_logger
from loom_gateway.api.deps import gw, require
from loom_gateway.api.event_stream import EventStream, data_frame
from loom_gateway.clients.inference import GenerateArgs
from loom_gateway.domain.errors import ApiError, BadRequest
from loom_gateway.domain.rbac import Perm, Principal

router = APIRouter(prefix="/v1", tags=["openai-compatible api"])
T = TypeVar("T")
log = get_logger(__name__)


class FunctionDef(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=4000)
    parameters: dict[str, Any] = Field(default_factory=dict)


class Tool(BaseModel):
    type: Literal["function"] = "function"
    function: FunctionDef


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatCompletionBody(BaseModel):
    model: str = Field(min_length=1, max_length=200)
    messages: list[Message] = Field(min_length=1, max_length=1000)
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=131072)
    max_completion_tokens: int | None = Field(None, ge=1, le=131072)
    seed: int | None = None
    stop: str | list[str] | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = Field(None, max_length=255)
    # Loom extensions, read when `model` is the key's app (openai_apps.py): its inputs, and the
    # conversation to continue (an answer returns its conversation_id).
    inputs: dict[str, Any] | None = None
    conversation_id: str | None = Field(None, max_length=64)


class EmbeddingsBody(BaseModel):
    model: str = Field(min_length=1, max_length=200)
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] | None = "float"
    user: str | None = Field(None, max_length=255)


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def _args(body: ChatCompletionBody) -> GenerateArgs:
    messages = []
    for m in body.messages:
        calls = [{"id": c.get("id", ""), "name": (c.get("function") or {}).get("name", ""),
                  "arguments": (c.get("function") or {}).get("arguments", "{}")} for c in m.tool_calls or []]
        messages.append({"role": "system" if m.role == "developer" else m.role, "content": _text(m.content),
                         "name": m.name, "tool_call_id": m.tool_call_id, "tool_calls": calls})
    sampling = {k: v for k, v in {"temperature": body.temperature, "top_p": body.top_p, "seed": body.seed,
                                  "max_tokens": body.max_completion_tokens or body.max_tokens}.items() if v is not None}
    if body.stop:
        sampling["stop"] = [body.stop] if isinstance(body.stop, str) else body.stop
    choice = body.tool_choice
    if isinstance(choice, dict):
        choice = (choice.get("function") or {}).get("name", "")
        if not choice:
            raise BadRequest("tool_choice.function.name is required", field="tool_choice")
    schema = ""
    fmt = body.response_format or {}
    if fmt.get("type") == "json_schema":
        schema = json.dumps((fmt.get("json_schema") or {}).get("schema") or {})
    elif fmt.get("type") == "json_object":
        schema = json.dumps({"type": "object"})
    tools = [{"name": t.function.name, "description": t.function.description,
              "parameters_json": json.dumps(t.function.parameters)} for t in body.tools or []]
    return GenerateArgs(model=body.model, messages=messages, sampling=sampling, tools=tools,
                        tool_choice=choice or "", json_schema=schema, request_id=new_id())


def stream_error(exc: Exception) -> dict:
    """A failure after the stream started, as OpenAI's in-stream `{"error": {...}}` event (its
    SDK raises it as APIError): the status line was sent, so it cannot be an HTTP error any more."""
    if not isinstance(exc, ApiError):
        log.error("stream failed", error=repr(exc))
        exc = ApiError("the stream failed")  # 500 internal_server_error
    kind = ("rate_limit_error" if exc.status == 429 else "invalid_request_error" if exc.status < 500
            else "server_error")
    return {"data": json.dumps({"error": {"message": exc.message, "type": kind, "param": exc.field,
                                          "code": exc.code}})}


class AskedAhead(Generic[T]):
    """An async generator's items with the first one asked for at once (in a task of its own)
    rather than when iteration starts; errors still come out of the iteration. `aclose()`
    closes the generator (a generation's RPC is cancelled) whether or not it was iterated."""

    def __init__(self, items: AsyncGenerator[T, None]) -> None:
        self.items = items
        self.first: asyncio.Task = asyncio.ensure_future(anext(items, _END))
        self.iterated = False

    def __aiter__(self) -> AskedAhead[T]:
        return self

    async def __anext__(self) -> T:
        if self.iterated:
            item = await anext(self.items, _END)
        else:
            self.iterated = True
            item = await self.first
        if item is _END:
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        if not self.first.done():
            self.first.cancel()
            await asyncio.wait([self.first])  # the generator is free to close once that step is over
        if not self.first.cancelled():
            self.first.exception()  # seen: an error nobody iterated to is not logged as never retrieved
        await self.items.aclose()


_END: Any = object()


def _calls(tool_calls) -> list[dict]:
    return [{"index": i, "id": c.id or f"call_{new_id()[-12:]}", "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}} for i, c in enumerate(tool_calls)]


@router.post("/chat/completions", name="openai.chat_completions")
async def chat_completions(body: ChatCompletionBody, request: Request, p: Principal = require(Perm.MODELS_USE)):
    if p.app_id and body.model == p.app_id:  # the app itself, not a model: run it
        from loom_gateway.api import openai_apps  # (it builds on this module's helpers)

        return await openai_apps.answer(body, request, p)
    g = gw(request)
    args = _args(body)
    cid, created = f"chatcmpl-{args.request_id}", int(time.time())
    # Held of the token quotas until the answer ends (limits.py): concurrent requests cannot all
    # pass the last tokens of a day.
    held = await g.limits.reserve(p, body.max_completion_tokens or body.max_tokens
                                  or g.settings.token_reservation_default)

    def chunk(delta: dict, finish: str | None, model: str, usage: dict | None = None) -> bytes:
        out = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if usage is not None:
            out["usage"] = usage
        return data_frame(json.dumps(out))

    if body.stream:
        # The model is asked now, not once the response's head and first frame are out: those
        # writes overlap the call instead of delaying it (the first token comes sooner).
        answer = AskedAhead(g.inference.generate(args, p.tenant_id))

        async def events():
            tokens = 0
            try:
                yield chunk({"role": "assistant", "content": ""}, None, body.model)
                async for c in answer:
                    model = c.model or body.model
                    if c.text:
                        yield chunk({"content": c.text}, None, model)
                    if c.finish_reason:
                        tokens = c.prompt_tokens + c.completion_tokens
                        if c.tool_calls:
                            yield chunk({"tool_calls": _calls(c.tool_calls)}, None, model)
                        usage = {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                                 "total_tokens": tokens}
                        yield chunk({}, "tool_calls" if c.tool_calls else c.finish_reason, model, usage)
                yield {"data": "[DONE]"}
            except Exception as exc:  # inference unreachable, or gone mid-answer
                yield stream_error(exc)
            finally:
                await answer.aclose()
                await g.limits.settle(held, p, tokens)

        return EventStream(events(), ping_s=g.settings.ping_interval_s)

    text, final = "", None
    try:
        async for c in g.inference.generate(args, p.tenant_id):
            text += c.text
            if c.finish_reason:
                final = c
    finally:
        used = final.prompt_tokens + final.completion_tokens if final else 0
        await asyncio.shield(g.limits.settle(held, p, used))
    usage = {"prompt_tokens": final.prompt_tokens if final else 0,
             "completion_tokens": final.completion_tokens if final else 0}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    finish = final.finish_reason if final else "stop"
    if final and final.tool_calls:
        message["tool_calls"] = _calls(final.tool_calls)
        finish = "tool_calls"
    return {"id": cid, "object": "chat.completion", "created": created, "model": (final.model if final else "")
            or body.model, "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}


@router.post("/embeddings", name="openai.embeddings")
async def embeddings(body: EmbeddingsBody, request: Request, p: Principal = require(Perm.MODELS_USE)) -> dict:
    g = gw(request)
    inputs = [body.input] if isinstance(body.input, str) else body.input
    if not inputs or len(inputs) > 2048:
        raise BadRequest("input must hold 1 to 2048 strings", field="input")
    model, vectors, tokens = await g.inference.embed(body.model, inputs, p.tenant_id)
    await g.limits.charge_tokens(p, tokens)
    if body.encoding_format == "base64":  # the openai SDK's default: little-endian float32
        vectors = [base64.b64encode(array.array("f", v).tobytes()).decode() for v in vectors]
    return {"object": "list", "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]}


@router.get("/models", name="openai.models")
async def models(request: Request, p: Principal = require(Perm.MODELS_USE)) -> dict:
    """The models an app key may name, its own app first (`model` = the app's id runs the app)."""
    g = gw(request)
    apps = []
    if p.app_id:
        app = await g.apps.get(p.tenant_id, p.app_id)
        if app["mode"] in ("chat", "chatflow", "agent"):
            apps.append({"id": app["id"], "object": "model", "created": app["created_at"], "owned_by": "loom-app",
                         "name": app["name"]})
    found = await g.inference.list_models()
    return {"object": "list", "data": apps + [{"id": m["name"], "object": "model", "created": 0,
                                               "owned_by": m["backend"] or "loom"} for m in found]}
