"""The OpenAI API: /v1/chat/completions (tools, response_format, SSE streaming),
/v1/completions, /v1/embeddings, /v1/models."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from loom_common.ids import new_id
from loom_inference.api.common import check_sampling, logprobs_wanted, prime, token_logprobs
from loom_inference.api.images import ImageBudget, decode_url
from loom_inference.api.openai import schemas as w
from loom_inference.engine.client import EngineClient
from loom_inference.engine.types import (
    ChatMessage,
    Delta,
    FinishReason,
    GenerateRequest,
    InvalidRequest,
    SamplingParams,
    TokenLogprob,
    ToolCall,
    ToolSpec,
)

MAX_CHOICES = 8  # n: each choice is one more sequence in the engine's batch


async def _choices(client: EngineClient, req: GenerateRequest, n: int) -> list[AsyncIterator[Delta]]:
    """n sequences for one request (OpenAI's `n`), each primed so an early error is an HTTP one.
    With a seed, choice i samples with seed + i: the same seed in every choice would give n
    copies of one answer."""
    streams: list[AsyncIterator[Delta]] = []
    try:
        for i in range(n):
            sampling = replace(req.sampling, seed=req.sampling.seed + i if req.sampling.seed is not None and i
                               else req.sampling.seed)
            _, deltas = await prime(client.generate(replace(req, sampling=sampling)))
            streams.append(deltas)
    except BaseException:
        for stream in streams:
            await stream.aclose()  # type: ignore[attr-defined]
        raise
    return streams


async def _merged(streams: list[AsyncIterator[Delta]]) -> AsyncIterator[tuple[int, Delta]]:
    """(choice index, delta) from every stream as they come."""
    if len(streams) == 1:
        async for d in streams[0]:
            yield 0, d
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(i: int, stream: AsyncIterator[Delta]) -> None:
        try:
            async for d in stream:
                await queue.put((i, d))
        except BaseException as exc:  # handed to the consumer, which raises it
            await queue.put((i, exc))
        finally:
            await queue.put((i, None))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        open_streams = len(streams)
        while open_streams:
            i, item = await queue.get()
            if item is None:
                open_streams -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield i, item
    finally:
        for task in tasks:
            task.cancel()
        for stream in streams:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]


def _sampling(body: w._Sampling, max_tokens: int | None) -> SamplingParams:
    s = SamplingParams(temperature=1.0, top_p=1.0, top_k=0)  # OpenAI's defaults
    if not 1 <= body.n <= MAX_CHOICES:
        raise InvalidRequest(f"must be between 1 and {MAX_CHOICES}", "n")
    if body.temperature is not None:
        s.temperature = body.temperature
    if body.top_p is not None:
        s.top_p = body.top_p
    s.seed = body.seed
    s.max_tokens = max_tokens
    s.stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    s.logprobs = logprobs_wanted(body.logprobs, body.top_logprobs)
    for f in ("presence_penalty", "frequency_penalty", "min_p", "top_k"):
        if getattr(body, f) is not None:
            setattr(s, f, getattr(body, f))
    check_sampling(s)
    return s


def _completion_logprobs(lps: list[TokenLogprob], offset: int) -> dict:
    """The legacy completions API's logprobs object."""
    offsets, at = [], offset
    for t in lps:
        offsets.append(at)
        at += len(t.token)
    return {"tokens": [t.token for t in lps], "token_logprobs": [t.logprob for t in lps],
            "top_logprobs": [{a.token: a.logprob for a in t.top} for t in lps], "text_offset": offsets}


def _finish(d: Delta) -> str:
    return {FinishReason.LENGTH: "length", FinishReason.TOOL_CALLS: "tool_calls"}.get(d.finish_reason, "stop")


def _usage(d: Delta) -> dict:
    u = d.usage
    p, c = (u.prompt_tokens, u.completion_tokens) if u else (0, 0)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _add_usage(total: dict | None, d: Delta) -> dict:
    """Usage over n choices: the prompt once (as OpenAI counts it), every choice's completion."""
    one = _usage(d)
    if total is None:
        return one
    c = total["completion_tokens"] + one["completion_tokens"]
    return {"prompt_tokens": total["prompt_tokens"], "completion_tokens": c,
            "total_tokens": total["prompt_tokens"] + c}


def _calls(calls: list[ToolCall], with_index: bool = False) -> list[dict]:
    out = []
    for i, c in enumerate(calls):
        item = {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
        if with_index:
            item["index"] = i
        out.append(item)
    return out


def _sse(obj: dict | str) -> bytes:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode()


async def _chat_request(body: w.ChatCompletionRequest) -> GenerateRequest:
    messages, budget = [], ImageBudget()
    for i, m in enumerate(body.messages):
        images = []
        for j, part in enumerate(m.content if isinstance(m.content, list) else []):
            field = f"messages.{i}.content.{j}.image_url"
            if part.type == "image_url":
                budget.take(field)
                if part.image_url is None or not part.image_url.url:
                    raise InvalidRequest("needs a url", field)
                images.append(await decode_url(part.image_url.url, field))
            elif part.type != "text":
                raise InvalidRequest(f"content parts of type {part.type!r} are not supported",
                                     f"messages.{i}.content.{j}.type")
        calls = [ToolCall(c.id, c.function.name, c.function.arguments) for c in m.tool_calls or []]
        content = m.text
        if calls and not content:
            content = json.dumps({"name": calls[0].name, "arguments": json.loads(calls[0].arguments or "{}")})
        messages.append(ChatMessage(m.role, content, m.name or "", m.tool_call_id or "", calls, images))
    tools = [ToolSpec(t.function.name, t.function.description, t.function.parameters) for t in body.tools or []]
    choice = body.tool_choice
    if isinstance(choice, w.NamedToolChoice):
        choice = choice.function.get("name", "")
    schema = ""
    rf = body.response_format
    if rf is not None and rf.type == "json_object":
        schema = json.dumps({"type": "object"})
    elif rf is not None and rf.type == "json_schema":
        if rf.json_schema is None or rf.json_schema.schema_ is None:
            raise InvalidRequest("json_schema.schema is required", "response_format.json_schema")
        schema = json.dumps(rf.json_schema.schema_)
    return GenerateRequest(model=body.model, messages=messages,
                           sampling=_sampling(body, body.max_completion_tokens or body.max_tokens),
                           json_schema=schema, tools=tools, tool_choice=choice or ("auto" if tools else ""))


async def _collect(deltas: AsyncIterator[Delta]) -> tuple[str, Delta, list[TokenLogprob]]:
    """A whole answer (non-streaming response): its text, the final delta, every token's logprob."""
    text, thought, last, lps = [], [], None, []
    async for d in deltas:
        text.append(d.text)
        thought.append(d.thinking)
        lps += d.logprobs
        last = d
    assert last is not None  # the engine always ends a stream with a finished delta
    last.thinking = "".join(thought)  # a reasoning model's thinking, whole
    return "".join(text), last, lps


def openai_router(client: EngineClient) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["openai"])

    @api.post("/chat/completions")
    async def chat_completions(body: w.ChatCompletionRequest):
        req = await _chat_request(body)
        streams = await _choices(client, req, body.n)
        cid, created = f"chatcmpl-{new_id()}", int(time.time())
        wants = req.sampling.logprobs is not None
        if not body.stream:
            choices, usage = [], None
            for i, (text, last, lps) in enumerate(await asyncio.gather(*map(_collect, streams))):
                msg: dict = {"role": "assistant", "content": None if last.tool_calls else text}
                if last.thinking:
                    msg["reasoning_content"] = last.thinking
                if last.tool_calls:
                    msg["tool_calls"] = _calls(last.tool_calls)
                logprobs = {"content": token_logprobs(lps)} if wants else None
                choices.append({"index": i, "message": msg, "finish_reason": _finish(last), "logprobs": logprobs})
                usage = _add_usage(usage, last)
            return JSONResponse({"id": cid, "object": "chat.completion", "created": created, "model": req.model,
                                 "choices": choices, "usage": usage})
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        def chunk(i: int, delta: dict, finish: str | None = None, lps: list[TokenLogprob] | None = None) -> dict:
            logprobs = {"content": token_logprobs(lps)} if wants and lps else None
            return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model,
                    "choices": [{"index": i, "delta": delta, "finish_reason": finish, "logprobs": logprobs}]}

        async def events() -> AsyncIterator[bytes]:
            for i in range(len(streams)):
                yield _sse(chunk(i, {"role": "assistant", "content": ""}))
            usage = None
            async for i, d in _merged(streams):
                if d.thinking:
                    yield _sse(chunk(i, {"reasoning_content": d.thinking}))
                if d.text:  # with tools too: backends hand back answer text, never the JSON envelope
                    yield _sse(chunk(i, {"content": d.text}, lps=d.logprobs))
                if d.finished:
                    if d.tool_calls:
                        yield _sse(chunk(i, {"tool_calls": _calls(d.tool_calls, with_index=True)}))
                    yield _sse(chunk(i, {}, _finish(d)))
                    usage = _add_usage(usage, d)
            if include_usage:
                yield _sse({"id": cid, "object": "chat.completion.chunk", "created": created,
                            "model": req.model, "choices": [], "usage": usage})
            yield _sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream")

    @api.post("/completions")
    async def completions(body: w.CompletionRequest):
        prompt = body.prompt if isinstance(body.prompt, str) else (body.prompt[0] if len(body.prompt) == 1 else None)
        if prompt is None:
            raise InvalidRequest("give exactly one prompt", "prompt")
        req = GenerateRequest(model=body.model, prompt=prompt, sampling=_sampling(body, body.max_tokens or 16),
                              suffix=body.suffix or "")
        streams = await _choices(client, req, body.n)
        cid, created = f"cmpl-{new_id()}", int(time.time())
        wants = req.sampling.logprobs is not None

        def choice(i: int, text: str, finish: str | None, lps: list[TokenLogprob], offset: int = 0) -> dict:
            logprobs = _completion_logprobs(lps, offset) if wants else None
            return {"index": i, "text": text, "finish_reason": finish, "logprobs": logprobs}

        def obj(choices: list[dict], usage: dict | None = None) -> dict:
            out = {"id": cid, "object": "text_completion", "created": created, "model": req.model,
                   "choices": choices}
            if usage:
                out["usage"] = usage
            return out

        if not body.stream:
            choices, usage = [], None
            for i, (text, last, lps) in enumerate(await asyncio.gather(*map(_collect, streams))):
                choices.append(choice(i, text, _finish(last), lps))
                usage = _add_usage(usage, last)
            return obj(choices, usage)

        async def events() -> AsyncIterator[bytes]:
            offsets = [0] * len(streams)
            async for i, d in _merged(streams):
                yield _sse(obj([choice(i, d.text, _finish(d) if d.finished else None, d.logprobs, offsets[i])]))
                offsets[i] += len(d.text)
            yield _sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream")

    @api.post("/embeddings")
    async def embeddings(body: w.EmbeddingRequest):
        inputs = [body.input] if isinstance(body.input, str) else body.input
        if not inputs:
            raise InvalidRequest("at least one input is required", "input")
        res = await client.embed(body.model, inputs, normalize=True)
        data = []
        for i, v in enumerate(res.vectors):
            emb = base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if body.encoding_format == "base64" else v
            data.append({"object": "embedding", "index": i, "embedding": emb})
        return {"object": "list", "data": data, "model": body.model,
                "usage": {"prompt_tokens": res.prompt_tokens, "total_tokens": res.prompt_tokens}}

    @api.get("/models")
    async def models():
        return {"object": "list", "data": [{"id": m.name, "object": "model", "created": 0, "owned_by": "loom"}
                                           for m in client.list_models()]}

    @api.get("/models/{model:path}")
    async def model(model: str):
        info = next((m for m in client.list_models() if m.name == model), None)
        if info is None:
            from loom_inference.engine.types import ModelNotFound

            raise ModelNotFound(model)
        return {"id": info.name, "object": "model", "created": 0, "owned_by": "loom"}

    return api
