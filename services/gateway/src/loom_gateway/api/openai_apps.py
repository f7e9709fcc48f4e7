"""An app behind the OpenAI-compatible API: `POST /v1/chat/completions` with an app key and
`model` set to that key's app id (as `GET /v1/models` lists it) runs the app (chat, chatflow,
agent) instead of calling a model, and answers in OpenAI's shapes, streaming or not.

How OpenAI's request maps onto the app's run:
    the last user message        -> the run's `query` (earlier messages are not replayed: an
                                    app keeps its memory per conversation)
    `conversation_id` (extra)    -> continue that conversation; the answer returns it (extra)
    `inputs` (extra)             -> the app's inputs (checked against its start node)
    `user`                       -> the end user (default "openai-client")
    sampling, `max_tokens`       -> ignored: the app's model settings apply
    `tools`, `response_format`   -> refused (400): an app's tools and output are its own
Streaming sends OpenAI's `chat.completion.chunk`s and `[DONE]`; a failed run ends the stream
with OpenAI's in-stream error object (openai_compat.stream_error)."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import Request

from loom_gateway.api import sse
from loom_gateway.api.context import Gateway
from loom_gateway.api.deps import gw
from loom_gateway.api.event_stream import EventStream
from loom_gateway.api.openai_compat import _text, stream_error
from loom_gateway.api.service_runs import _blocking as blocking  # the one blocking answer of a run
from loom_gateway.api.service_runs import _start as start_run  # limits, files, token reservation
from loom_gateway.domain.errors import ApiError, BadRequest, Upstream
from loom_gateway.domain.execution import Fold, StartedRun
from loom_gateway.domain.rbac import Principal

DEFAULT_USER = "openai-client"


def _query(messages) -> str:
    for m in reversed(messages):
        if m.role == "user":
            text = _text(m.content)
            if text.strip():
                return text
            break
    raise BadRequest("the last user message must hold text: it is the app's query", field="messages")


def _usage(metadata: dict[str, Any]) -> dict[str, int]:
    u = metadata.get("usage") or {}
    prompt, completion = int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": int(u.get("total_tokens") or prompt + completion)}


async def answer(body, request: Request, p: Principal):
    """Run the key's app for an OpenAI chat completion request (body: ChatCompletionBody)."""
    if body.tools or body.response_format:
        raise BadRequest("an app's tools and output format are its own: send no tools or response_format "
                         "when model is the app", field="tools" if body.tools else "response_format")
    g = gw(request)
    run = await start_run(request, p, "chat", user=body.user or DEFAULT_USER, inputs=body.inputs,
                          query=_query(body.messages), conversation_id=body.conversation_id or None,
                          response_mode="streaming" if body.stream else "blocking")
    created = int(time.time())
    if body.stream:
        return EventStream(_chunks(g, run, body.model, created), ping_s=g.settings.ping_interval_s)
    result = await blocking(g, run)
    metadata = result.get("metadata") or {}
    return {"id": f"chatcmpl-{run.run_id}", "object": "chat.completion", "created": created, "model": body.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.get("answer", "")},
                         "finish_reason": "stop"}],
            "usage": _usage(metadata), "conversation_id": run.conversation_id}


async def _chunks(g: Gateway, run: StartedRun, model: str, created: int):
    cid = f"chatcmpl-{run.run_id}"

    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> dict:
        out: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                               "conversation_id": run.conversation_id}
        if usage is not None:
            out["usage"] = usage
        return {"data": json.dumps(out, ensure_ascii=False)}

    fold = Fold()
    yield chunk({"role": "assistant", "content": ""})
    shown = ""
    try:  # to its end, or a human-input form it waits for
        async for _ in sse.follow(g, run, fold):
            if fold.answer.startswith(shown) and len(fold.answer) > len(shown):  # a replaced answer is not resent
                yield chunk({"content": fold.answer[len(shown):]})
            shown = fold.answer
    except Upstream as exc:  # run_timeout, or the feed failed: the run goes on, runs.finished records it
        yield stream_error(exc)
        return
    await sse.record(g, run, fold)
    if fold.status == "failed":
        yield stream_error(ApiError(fold.error or "the run failed", code=fold.error_code or "run_failed", status=400))
        return
    yield chunk({}, "stop", _usage(fold.metadata))
    yield {"data": "[DONE]"}
