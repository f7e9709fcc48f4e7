"""The Ollama API: /api/generate, /api/chat (NDJSON streams), /api/embed, /api/embeddings,
/api/tags, /api/show, /api/ps, /api/pull (progress stream), /api/delete, /api/version."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from loom_inference import __version__
from loom_inference.api.common import ns, prime, schema_from_format
from loom_inference.api.ollama import schemas as w
from loom_inference.engine.client import EngineClient
from loom_inference.engine.types import (
    ChatMessage,
    Delta,
    GenerateRequest,
    InferenceError,
    InvalidRequest,
    ModelInfo,
    SamplingParams,
    ToolCall,
    ToolSpec,
)
from loom_inference.models import ModelManager

NDJSON = "application/x-ndjson"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _sampling(o: w.Options | None) -> SamplingParams:
    # Ollama's defaults, which differ from OpenAI's.
    s = SamplingParams(temperature=0.8, top_p=0.9, top_k=40, repeat_penalty=1.1)
    if o is None:
        return s
    for f in ("temperature", "top_p", "top_k", "repeat_penalty", "seed"):
        if getattr(o, f) is not None:
            setattr(s, f, getattr(o, f))
    if o.num_predict is not None and o.num_predict > 0:
        s.max_tokens = o.num_predict
    s.stop = list(o.stop or [])
    return s


def _final_stats(d: Delta) -> dict:
    t, u = d.timings, d.usage
    return {"done_reason": "stop" if d.finish_reason in (None, "stop", "tool_calls") else str(d.finish_reason),
            "total_duration": ns(t.total_ms) if t else 0, "load_duration": ns(t.load_ms) if t else 0,
            "prompt_eval_count": u.prompt_tokens if u else 0, "prompt_eval_duration": ns(t.prefill_ms) if t else 0,
            "eval_count": u.completion_tokens if u else 0, "eval_duration": ns(t.decode_ms) if t else 0}


def _details(m: ModelInfo) -> dict:
    return {"parent_model": "", "format": "gguf" if m.backend.startswith("llamacpp") else m.backend,
            "family": m.family, "families": [m.family] if m.family else None,
            "parameter_size": m.parameter_size, "quantization_level": m.quantization}


def _tool_calls(calls: list[ToolCall]) -> list[dict]:
    return [{"function": {"name": c.name, "arguments": json.loads(c.arguments_json)}} for c in calls]


def _messages(msgs: list[w.Message]) -> list[ChatMessage]:
    out = []
    for m in msgs:
        calls = [ToolCall("", c.function.name, c.function.arguments if isinstance(c.function.arguments, str)
                          else json.dumps(c.function.arguments)) for c in (m.tool_calls or [])]
        content = m.content or ""
        if calls and not content:
            content = json.dumps({"name": calls[0].name, "arguments": json.loads(calls[0].arguments_json)})
        out.append(ChatMessage(m.role, content, m.tool_name or "", tool_calls=calls))
    return out


def _stream(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type=NDJSON)


def ollama_router(client: EngineClient, manager: ModelManager) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["ollama"])

    async def _run(req: GenerateRequest, chat: bool, stream: bool):
        first, deltas = await prime(client.generate(req))

        def frame(d: Delta) -> dict:
            base = {"model": req.model, "created_at": _now(), "done": d.finished}
            if chat:
                msg = {"role": "assistant", "content": d.text}
                if d.tool_calls:
                    msg["tool_calls"], msg["content"] = _tool_calls(d.tool_calls), ""
                base["message"] = msg
            else:
                base["response"] = d.text
            if d.finished:
                base.update(_final_stats(d))
            return base

        if stream:
            async def body() -> AsyncIterator[bytes]:
                async for d in deltas:  # with tools too: answer text streams, a call comes whole at the end
                    if d.text or d.finished:
                        yield (json.dumps(frame(d)) + "\n").encode()
            return _stream(body())
        text, last = [], first
        async for d in deltas:
            text.append(d.text)
            last = d
        last.text = "".join(text)
        return JSONResponse(frame(last))

    @api.post("/generate")
    async def generate(body: w.GenerateRequest):
        if not body.prompt:  # Ollama: an empty prompt just loads the model
            manager.router.resolve(body.model)
            return JSONResponse({"model": body.model, "created_at": _now(), "response": "", "done": True,
                                 "done_reason": "load"})
        messages = []
        if not body.raw:
            if body.system:
                messages.append(ChatMessage("system", body.system))
            messages.append(ChatMessage("user", body.prompt))
        req = GenerateRequest(model=body.model, prompt=body.prompt if body.raw else "", messages=messages,
                              sampling=_sampling(body.options), json_schema=schema_from_format(body.format, "format"),
                              raw=body.raw)
        return await _run(req, chat=False, stream=body.stream)

    @api.post("/chat")
    async def chat(body: w.ChatRequest):
        if not body.messages:
            manager.router.resolve(body.model)
            return JSONResponse({"model": body.model, "created_at": _now(), "done": True, "done_reason": "load",
                                 "message": {"role": "assistant", "content": ""}})
        tools = [ToolSpec(t.function.name, t.function.description, t.function.parameters) for t in body.tools or []]
        req = GenerateRequest(model=body.model, messages=_messages(body.messages), sampling=_sampling(body.options),
                              json_schema=schema_from_format(body.format, "format"), tools=tools,
                              tool_choice="auto" if tools else "")
        return await _run(req, chat=True, stream=body.stream)

    @api.post("/embed")
    async def embed(body: w.EmbedRequest):
        inputs = [body.input] if isinstance(body.input, str) else body.input
        if not inputs:
            raise InvalidRequest("at least one input is required", "input")
        t0 = time.perf_counter()
        res = await client.embed(body.model, inputs, normalize=True)
        return {"model": body.model, "embeddings": res.vectors, "total_duration": ns((time.perf_counter() - t0) * 1e3),
                "load_duration": 0, "prompt_eval_count": res.prompt_tokens}

    @api.post("/embeddings")
    async def embeddings(body: w.EmbeddingsRequest):
        res = await client.embed(body.model, [body.prompt], normalize=False)
        return {"embedding": res.vectors[0]}

    @api.get("/tags")
    async def tags():
        models = []
        for m in client.list_models():
            models.append({"name": m.name, "model": m.name, "modified_at": _now(), "size": m.size_bytes,
                           "digest": m.digest or "", "details": _details(m)})
        return {"models": models}

    @api.post("/show")
    async def show(body: w.ModelRequest):
        info, meta = manager.show(body.target)
        model_info = {k: v for k, v in meta.items() if not str(v).startswith("[") and k != "tokenizer.chat_template"}
        if info.context_length:
            model_info.setdefault("general.context_length", info.context_length)
        if info.embedding_dimension:
            model_info["embedding_length"] = info.embedding_dimension
        caps = ["embedding"] if info.kind == "embedding" else ["completion", "tools"]
        return {"modelfile": f"FROM {info.path or info.name}\n", "parameters": "", "template": info.template,
                "details": _details(info), "model_info": model_info, "capabilities": caps, "modified_at": _now()}

    @api.get("/ps")
    async def ps():
        expires = (datetime.now(UTC) + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        return {"models": [{"name": m.name, "model": m.name, "size": m.size_bytes, "digest": m.digest,
                            "details": _details(m), "expires_at": expires, "size_vram": 0,
                            "context_length": m.context_length, "running": running, "waiting": waiting}
                           for m, running, waiting in client.running()]}

    @api.post("/pull")
    async def pull(body: w.ModelRequest):
        progress = manager.pull(body.target, insecure=body.insecure)
        first = await progress.__anext__()  # bad names fail here, as HTTP errors

        def frame(p) -> dict:
            out = {"status": p.status}
            if p.digest:
                out["digest"] = p.digest
            if p.total:
                out.update(total=p.total, completed=p.completed)
            return out

        if not body.stream:
            last = first
            async for p in progress:
                last = p
            return frame(last)

        async def lines() -> AsyncIterator[bytes]:
            yield (json.dumps(frame(first)) + "\n").encode()
            try:
                async for p in progress:
                    yield (json.dumps(frame(p)) + "\n").encode()
            except InferenceError as exc:  # mid-stream: Ollama reports errors as a line
                yield (json.dumps({"error": str(exc)}) + "\n").encode()

        return _stream(lines())

    @api.delete("/delete")
    async def delete(body: w.ModelRequest):
        await manager.delete(body.target)
        return Response(status_code=200)

    @api.get("/version")
    async def version():
        return {"version": __version__}

    @api.head("/")
    async def head_root():
        return Response(status_code=200)

    return api


async def root(_: Request):
    return Response("Ollama is running", media_type="text/plain")
