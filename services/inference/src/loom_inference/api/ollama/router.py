"""The Ollama API: /api/generate, /api/chat (NDJSON streams), /api/embed, /api/embeddings,
/api/tags, /api/show, /api/ps, /api/pull and /api/create (progress streams), /api/copy,
/api/blobs/:digest, /api/delete, /api/version."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from loom_inference import __version__, modelfile
from loom_inference.api.common import (
    check_sampling,
    logprobs_wanted,
    ns,
    prime,
    schema_from_format,
    token_logprobs,
)
from loom_inference.api.images import ImageBudget, decode_base64
from loom_inference.api.ollama import schemas as w
from loom_inference.engine.client import EngineClient
from loom_inference.engine.types import (
    ChatMessage,
    Delta,
    GenerateRequest,
    Image,
    InferenceError,
    InvalidRequest,
    ModelInfo,
    SamplingParams,
    ToolCall,
    ToolSpec,
)
from loom_inference.models import ModelManager
from loom_inference.prompting import templates
from loom_inference.pull import Progress
from loom_inference.router.lifecycle import parse_keep_alive

NDJSON = "application/x-ndjson"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _options(o: w.Options | None, model: dict) -> dict:
    """A request's options over its model's Modelfile PARAMETERs (the request's own win)."""
    mine = o.model_dump(exclude_none=True) if o is not None else {}
    return {**model, **mine}


def _sampling(options: dict) -> SamplingParams:
    # Ollama's defaults, which differ from OpenAI's.
    s = SamplingParams(temperature=0.8, top_p=0.9, top_k=40, repeat_penalty=1.1)
    for f in ("temperature", "top_p", "top_k", "repeat_penalty", "seed", "repeat_last_n", "presence_penalty",
              "frequency_penalty", "min_p", "mirostat", "mirostat_tau", "mirostat_eta"):
        if options.get(f) is not None:
            setattr(s, f, options[f])
    check_sampling(s, "options.")
    if options.get("num_predict") is not None and options["num_predict"] > 0:
        s.max_tokens = options["num_predict"]
    s.stop = list(options.get("stop") or [])
    return s


def _keep_alive(value) -> float | str | None:
    """A request's keep_alive for the router ("default" when it names none)."""
    return "default" if value is None else parse_keep_alive(value)




def _iso(ts: float | None) -> str:
    # Ollama's "forever" is its clock's farthest time; clients parse the date, so one far ahead.
    when = datetime.fromtimestamp(ts, UTC) if ts is not None else datetime.now(UTC) + timedelta(days=365 * 290)
    return when.isoformat().replace("+00:00", "Z")


def _final_stats(d: Delta) -> dict:
    t, u = d.timings, d.usage
    return {"done_reason": "stop" if d.finish_reason in (None, "stop", "tool_calls") else str(d.finish_reason),
            "total_duration": ns(t.total_ms) if t else 0, "load_duration": ns(t.load_ms) if t else 0,
            "prompt_eval_count": u.prompt_tokens if u else 0, "prompt_eval_duration": ns(t.prefill_ms) if t else 0,
            "eval_count": u.completion_tokens if u else 0, "eval_duration": ns(t.decode_ms) if t else 0}


def _details(m: ModelInfo, parent: str = "") -> dict:
    return {"parent_model": parent, "format": "gguf" if m.backend.startswith("llamacpp") else m.backend,
            "family": m.family, "families": [m.family] if m.family else None,
            "parameter_size": m.parameter_size, "quantization_level": m.quantization}


def _tool_calls(calls: list[ToolCall]) -> list[dict]:
    return [{"function": {"name": c.name, "arguments": json.loads(c.arguments_json)}} for c in calls]


async def _images(items: list[str] | None, field: str, budget: ImageBudget) -> list[Image]:
    """Ollama's `images` (base64), decoded in order. A bad one is a 400 naming `<field>.<i>`;
    a model that cannot see is refused naming `<field>` (the list)."""
    out = []
    for i, item in enumerate(items or []):
        budget.take(f"{field}.{i}")
        image = await decode_base64(item, f"{field}.{i}")
        image.field = field
        out.append(image)
    return out


async def _messages(msgs: list[w.Message]) -> list[ChatMessage]:
    out, budget = [], ImageBudget()
    for i, m in enumerate(msgs):
        calls = [ToolCall("", c.function.name, c.function.arguments if isinstance(c.function.arguments, str)
                          else json.dumps(c.function.arguments)) for c in (m.tool_calls or [])]
        content = m.content or ""
        if calls and not content:
            content = json.dumps({"name": calls[0].name, "arguments": json.loads(calls[0].arguments_json)})
        out.append(ChatMessage(m.role, content, m.tool_name or "", tool_calls=calls,
                               images=await _images(m.images, f"messages.{i}.images", budget)))
    return out


def _stream(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type=NDJSON)


def _preset_messages(messages: list[dict]) -> list[dict[str, str]]:
    out = []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role not in modelfile.ROLES or not isinstance(content, str):
            raise InvalidRequest(f"needs a role ({', '.join(modelfile.ROLES)}) and a text content",
                                 f"messages.{i}")
        out.append({"role": role, "content": content})
    return out


async def _progress(progress: AsyncIterator[Progress], stream: bool):
    """A pull's or create's progress: an NDJSON stream, or its last line. Errors before the
    first line are HTTP errors; later ones a line with `error`, as Ollama reports them."""
    first = await progress.__anext__()  # bad names and sources fail here, as HTTP errors

    def frame(p: Progress) -> dict:
        out: dict = {"status": p.status}
        if p.digest:
            out["digest"] = p.digest
        if p.total:
            out.update(total=p.total, completed=p.completed)
        return out

    if not stream:
        last = first
        async for p in progress:
            last = p
        return frame(last)

    async def lines() -> AsyncIterator[bytes]:
        yield (json.dumps(frame(first)) + "\n").encode()
        try:
            async for p in progress:
                yield (json.dumps(frame(p)) + "\n").encode()
        except InferenceError as exc:
            yield (json.dumps({"error": str(exc)}) + "\n").encode()

    return _stream(lines())


def ollama_router(client: EngineClient, manager: ModelManager) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["ollama"])

    async def _run(req: GenerateRequest, chat: bool, stream: bool):
        first, deltas = await prime(client.generate(req))

        def frame(d: Delta) -> dict:
            base = {"model": req.model, "created_at": _now(), "done": d.finished}
            if chat:
                msg = {"role": "assistant", "content": d.text}
                if d.thinking:
                    msg["thinking"] = d.thinking
                if d.tool_calls:
                    msg["tool_calls"], msg["content"] = _tool_calls(d.tool_calls), ""
                base["message"] = msg
            else:
                base["response"] = d.text
                if d.thinking:
                    base["thinking"] = d.thinking
            if d.finished:
                base.update(_final_stats(d))
            if req.sampling.logprobs is not None and d.logprobs:
                base["logprobs"] = token_logprobs(d.logprobs)
            return base

        if stream:
            async def body() -> AsyncIterator[bytes]:
                async for d in deltas:  # with tools too: answer text streams, a call comes whole at the end
                    if d.text or d.thinking or d.finished:
                        yield (json.dumps(frame(d)) + "\n").encode()
            return _stream(body())
        text, thought, last, lps = [], [], first, []
        async for d in deltas:
            text.append(d.text)
            thought.append(d.thinking)
            lps += d.logprobs
            last = d
        last.text, last.thinking, last.logprobs = "".join(text), "".join(thought), lps
        return JSONResponse(frame(last))

    async def _load(model: str, keep_alive) -> str:
        """Ollama: a request with nothing to answer loads the model, or with keep_alive 0 unloads it."""
        keep = _keep_alive(keep_alive)
        await manager.router.load(model, keep)
        return "unload" if keep == 0 else "load"

    @api.post("/generate")
    async def generate(body: w.GenerateRequest):
        if body.images and (body.raw or body.suffix):
            raise InvalidRequest("images go with a templated prompt, not a raw or fill-in-the-middle one", "images")
        if not body.prompt:  # Ollama: an empty prompt just loads (or, keep_alive 0, unloads) the model
            reason = await _load(body.model, body.keep_alive)
            return JSONResponse({"model": body.model, "created_at": _now(), "response": "", "done": True,
                                 "done_reason": reason})
        options = _options(body.options, manager.parameters(body.model))
        messages = []
        if not body.raw and not body.suffix:  # fill-in-the-middle takes prefix and suffix as they are
            if body.system:
                messages.append(ChatMessage("system", body.system))
            messages.append(ChatMessage("user", body.prompt, images=await _images(body.images, "images",
                                                                                    ImageBudget())))
        req = GenerateRequest(model=body.model, prompt=body.prompt if body.raw or body.suffix else "",
                              messages=messages, suffix=body.suffix or "",
                              sampling=_sampling(options), json_schema=schema_from_format(body.format, "format"),
                              raw=body.raw, keep_alive=_keep_alive(body.keep_alive), num_ctx=options.get("num_ctx"))
        req.sampling.logprobs = logprobs_wanted(body.logprobs, body.top_logprobs)
        req.think = body.think
        return await _run(req, chat=False, stream=body.stream)

    @api.post("/chat")
    async def chat(body: w.ChatRequest):
        if not body.messages:
            reason = await _load(body.model, body.keep_alive)
            return JSONResponse({"model": body.model, "created_at": _now(), "done": True, "done_reason": reason,
                                 "message": {"role": "assistant", "content": ""}})
        tools = [ToolSpec(t.function.name, t.function.description, t.function.parameters) for t in body.tools or []]
        options = _options(body.options, manager.parameters(body.model))
        req = GenerateRequest(model=body.model, messages=await _messages(body.messages), sampling=_sampling(options),
                              json_schema=schema_from_format(body.format, "format"), tools=tools,
                              tool_choice="auto" if tools else "", keep_alive=_keep_alive(body.keep_alive),
                              num_ctx=options.get("num_ctx"))
        req.sampling.logprobs = logprobs_wanted(body.logprobs, body.top_logprobs)
        req.think = body.think
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
        info, meta = await manager.show(body.target)
        model_info = {k: v for k, v in meta.items() if not str(v).startswith("[") and k != "tokenizer.chat_template"}
        if info.context_length:
            model_info.setdefault("general.context_length", info.context_length)
        if info.embedding_dimension:
            model_info["embedding_length"] = info.embedding_dimension
        caps = ["embedding"] if info.kind == "embedding" else (
            ["completion", "vision"] if info.vision else ["completion", "tools"]) + (
            ["thinking"] if info.thinking else [])
        params = dict(info.parameters)
        family_stops = templates.stops_for({"general.architecture": meta.get("general.architecture", "")})
        if family_stops and "stop" not in params:
            params["stop"] = family_stops  # what every chat request of this model stops at
        template = info.template or str(meta.get("tokenizer.chat_template", "")) or (
            f"(built-in {info.family} turn format)" if info.kind != "embedding" and info.family else "")
        spec = modelfile.ModelSpec(from_=info.parent or info.path or info.name, parameters=info.parameters,
                                   system=info.system or None, template=info.template or None,
                                   messages=info.messages, license=info.license)
        return {"modelfile": modelfile.render(spec), "parameters": modelfile.parameters_text(params),
                "template": template, "system": info.system, "license": "\n".join(info.license),
                "messages": info.messages or None, "details": _details(info, parent=info.parent),
                "model_info": model_info, "capabilities": caps, "modified_at": _now()}

    @api.post("/create")
    async def create(body: w.CreateRequest):
        if body.quantize:
            raise InvalidRequest("quantizing is not supported by this engine", "quantize")
        if body.adapters:
            raise InvalidRequest("adapters (LoRA) are not supported by this engine", "adapters")
        if body.modelfile:
            spec = modelfile.parse(body.modelfile)
        else:
            license_ = [body.license] if isinstance(body.license, str) else list(body.license or [])
            spec = modelfile.ModelSpec(from_=body.from_ or "", system=body.system, template=body.template,
                                       parameters=modelfile.coerce_parameters(body.parameters or {}),
                                       messages=_preset_messages(body.messages or []), license=license_)
        if not body.target:
            raise InvalidRequest("is required", "model")
        return await _progress(manager.create(body.target, spec, body.files), body.stream)

    @api.post("/copy")
    async def copy(body: w.CopyRequest):
        await manager.copy(body.source, body.destination)
        return Response(status_code=200)

    @api.head("/blobs/{digest}")
    async def blob_exists(digest: str):
        return Response(status_code=200 if manager.has_blob(digest) else 404)

    @api.post("/blobs/{digest}")
    async def blob_upload(digest: str, request: Request):
        created = await manager.receive_blob(digest, request.stream())
        return Response(status_code=201 if created else 200)

    @api.get("/ps")
    async def ps():
        # size: weights + KV cache while loaded; size_vram: what of it is on a GPU (this CPU
        # engine offloads nothing unless a route sets n_gpu_layers, and then it is not measured).
        return {"models": [{"name": m.name, "model": m.name, "size": m.memory_bytes or m.size_bytes,
                            "digest": m.digest, "details": _details(m),
                            "expires_at": _iso(manager.router.expires_at(m.name)), "size_vram": 0,
                            "context_length": m.context_length, "running": running, "waiting": waiting}
                           for m, running, waiting in client.running()]}

    @api.post("/pull")
    async def pull(body: w.ModelRequest):
        return await _progress(manager.pull(body.target, insecure=body.insecure), body.stream)

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
