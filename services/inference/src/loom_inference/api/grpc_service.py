"""inference.v1 servicer: proto <-> engine types, engine errors -> gRPC status codes.

Thin by design: every call is one router call. Cancelling the RPC (client gone, deadline
passed) cancels the handler task, which closes the router's stream, which aborts the
sequence and frees its KV slot on the next engine step.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc
import httpx

from loom.inference.v1 import inference_pb2 as pb
from loom.inference.v1 import inference_pb2_grpc
from loom_common.grpc_errors import abort, abort_status
from loom_common.telemetry import TENANT_HEADER
from loom_inference.api.common import check_sampling
from loom_inference.api.images import ImageBudget, from_bytes
from loom_inference.engine.client import EngineClient
from loom_inference.engine.types import (
    ChatMessage,
    Delta,
    FinishReason,
    GenerateRequest,
    InferenceError,
    InvalidRequest,
    ModelInfo,
    SamplingParams,
    ToolCall,
    ToolSpec,
)
from loom_inference.models import ModelManager

_FINISH = {FinishReason.STOP: pb.FINISH_REASON_STOP, FinishReason.LENGTH: pb.FINISH_REASON_LENGTH,
           FinishReason.TOOL_CALLS: pb.FINISH_REASON_TOOL_CALLS, FinishReason.ABORTED: pb.FINISH_REASON_ABORTED,
           FinishReason.ERROR: pb.FINISH_REASON_ERROR}


def _sampling(p: pb.SamplingParams) -> SamplingParams:
    s = SamplingParams()
    if p.HasField("temperature"):
        s.temperature = p.temperature
    if p.HasField("top_p"):
        s.top_p = p.top_p
    if p.HasField("top_k"):
        s.top_k = p.top_k
    for name in ("repeat_penalty", "min_p", "presence_penalty", "frequency_penalty", "repeat_last_n", "mirostat",
                 "mirostat_tau", "mirostat_eta"):
        if p.HasField(name):
            setattr(s, name, getattr(p, name))
    if p.HasField("seed"):
        s.seed = p.seed
    if p.HasField("max_tokens"):
        if p.max_tokens < 0:
            raise InvalidRequest("must be >= 0", "sampling.max_tokens")
        s.max_tokens = p.max_tokens or None
    s.stop = list(p.stop)
    if s.temperature < 0:
        raise InvalidRequest("must be >= 0", "sampling.temperature")
    if not 0.0 < s.top_p <= 1.0:
        raise InvalidRequest("must be in (0, 1]", "sampling.top_p")
    check_sampling(s, "sampling.")
    return s


def request_from_proto(r: pb.GenerateRequest) -> GenerateRequest:
    if not r.model:
        raise InvalidRequest("is required", "model")
    if not r.prompt and not r.messages:
        raise InvalidRequest("give a prompt or messages", "prompt")
    tools = []
    for i, t in enumerate(r.tools):
        try:
            params = json.loads(t.parameters_json_schema) if t.parameters_json_schema else None
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"not JSON: {exc}", f"tools[{i}].parameters_json_schema") from exc
        tools.append(ToolSpec(t.name, t.description, params))
    if r.json_schema:
        try:
            json.loads(r.json_schema)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"not JSON: {exc}", "json_schema") from exc
    budget = ImageBudget()
    messages = [ChatMessage(m.role, m.content, m.name, m.tool_call_id,
                            [ToolCall(c.id, c.name, c.arguments_json) for c in m.tool_calls],
                            _images(m.images, f"messages.{i}.images", budget)) for i, m in enumerate(r.messages)]
    return GenerateRequest(model=r.model, prompt=r.prompt, messages=messages,
                           sampling=_sampling(r.sampling) if r.HasField("sampling") else SamplingParams(),
                           json_schema=r.json_schema, tools=tools, tool_choice=r.tool_choice,
                           request_id=r.request_id)


def _images(items, field: str, budget: ImageBudget) -> list:
    """A message's images, checked like the HTTP APIs' (count, size, format); each keeps its field,
    so a model that cannot read images is refused naming `messages.<i>.images.<j>`."""
    out = []
    for j, img in enumerate(items):
        budget.take(f"{field}.{j}")
        out.append(from_bytes(img.data, f"{field}.{j}"))
    return out


def chunk_from_delta(d: Delta) -> pb.GenerateChunk:
    chunk = pb.GenerateChunk(text=d.text, token_ids=d.token_ids, model=d.model)
    if d.finish_reason is not None:
        chunk.finish_reason = _FINISH[d.finish_reason]
    if d.usage is not None:
        chunk.usage.CopyFrom(pb.Usage(prompt_tokens=d.usage.prompt_tokens,
                                      completion_tokens=d.usage.completion_tokens))
    if d.timings is not None:
        t = d.timings
        chunk.timings.CopyFrom(pb.Timings(queue_ms=t.queue_ms, prefill_ms=t.prefill_ms, ttft_ms=t.ttft_ms,
                                          decode_ms=t.decode_ms, total_ms=t.total_ms, load_ms=t.load_ms))
    for c in d.tool_calls:
        chunk.tool_calls.add(id=c.id, name=c.name, arguments_json=c.arguments_json)
    return chunk


def model_to_proto(m: ModelInfo) -> pb.ModelInfo:
    return pb.ModelInfo(name=m.name, backend=m.backend, kind=m.kind, context_length=m.context_length,
                        embedding_dimension=m.embedding_dimension, size_bytes=m.size_bytes, family=m.family,
                        quantization=m.quantization, loaded=m.loaded, vision=m.vision)


def _tenant(context) -> str:
    """The workspace the call acts for (the service token's: the auth interceptor checks the header)."""
    return dict(context.invocation_metadata() or ()).get(TENANT_HEADER, "")


REMOTE_BACKENDS = ("openai", "ollama")


def _vision(r: pb.RegisterRemoteModelRequest) -> dict:
    """A remote model the workspace says reads images gets them forwarded (else they are refused)."""
    return {"vision": True} if r.vision else {}
MAX_PULL_NAME = 2048  # a URL with its #sha256= pin fits


class InferenceServicer(inference_pb2_grpc.InferenceServicer):
    def __init__(self, client: EngineClient, build_remote: Callable[..., object] | None = None,
                 manager: ModelManager | None = None) -> None:
        self.client = client
        # (name, backend, base_url, api_key, remote_model) -> a Backend; None: registration refused
        self.build_remote = build_remote
        self.manager = manager  # None: pulls refused

    async def Generate(self, request, context):
        try:
            req = request_from_proto(request)
            req.tenant_id = _tenant(context)
            stream = self.client.generate(req)
            try:
                async for delta in stream:
                    yield chunk_from_delta(delta)
            finally:
                await stream.aclose()  # on cancel too: aborts the sequence now, not at GC time
        except InferenceError as exc:
            await abort(context, exc)  # its class's status; a field as a BadRequest

    async def Embed(self, request, context):
        try:
            if not request.model:
                raise InvalidRequest("is required", "model")
            if not request.inputs:
                raise InvalidRequest("at least one input is required", "inputs")
            res = await self.client.embed(request.model, list(request.inputs), normalize=request.normalize,
                                          tenant_id=_tenant(context))
        except InferenceError as exc:
            await abort(context, exc)  # its class's status; a field as a BadRequest
        return pb.EmbedResponse(model=res.model, dimension=res.dimension, prompt_tokens=res.prompt_tokens,
                                embeddings=[pb.Embedding(values=v) for v in res.vectors])

    async def ListModels(self, request, context):
        return pb.ListModelsResponse(models=[model_to_proto(m) for m in self.client.list_models()])

    async def RegisterRemoteModel(self, request, context):
        try:
            if self.build_remote is None:
                raise InvalidRequest("this server does not take remote models", "backend")
            _check_remote(request, _tenant(context))
            source = (request.backend, request.base_url, request.api_key, request.remote_model or request.name,
                      request.vision)
            replaced = await self.client.register_tenant(request.tenant_id, request.name, source,
                                                         lambda: self.build_remote(request.name, *source[:4],
                                                                                   **_vision(request)))
        except InferenceError as exc:
            await abort(context, exc)  # its class's status; a field as a BadRequest
        return pb.RegisterRemoteModelResponse(replaced=replaced)

    async def RemoveRemoteModel(self, request, context):
        try:
            if not request.tenant_id or request.tenant_id != _tenant(context):
                raise InvalidRequest("must be the caller's workspace", "tenant_id")
            removed = await self.client.remove_tenant(request.tenant_id, request.name)
        except InferenceError as exc:
            await abort(context, exc)  # its class's status; a field as a BadRequest
        return pb.RemoveRemoteModelResponse(removed=removed)

    async def PullModel(self, request, context):
        """The model API's pull (same manager, same confined policy), its progress streamed."""
        try:
            if self.manager is None:
                raise InvalidRequest("this server does not pull models", "model")
            if not request.model or len(request.model) > MAX_PULL_NAME:
                raise InvalidRequest(f"is required (at most {MAX_PULL_NAME} characters)", "model")
            async for p in self.manager.pull(request.model, insecure=request.insecure):
                yield pb.PullProgress(status=p.status, digest=p.digest, total=p.total, completed=p.completed)
        except InferenceError as exc:
            await abort(context, exc)  # its class's status; a field as a BadRequest
        except httpx.HTTPError as exc:  # the registry's manifest could not be fetched: a name this engine cannot pull
            await abort_status(context, grpc.StatusCode.INVALID_ARGUMENT,
                               f"model: the model's source could not be reached ({type(exc).__name__})", field="model")


def _check_remote(r: pb.RegisterRemoteModelRequest, caller: str) -> None:
    """Bounded, named fields (the URL itself was vetted by the gateway, which owns the policy)."""
    if not r.tenant_id or r.tenant_id != caller:
        raise InvalidRequest("must be the caller's workspace", "tenant_id")
    if not r.name or len(r.name) > 200:
        raise InvalidRequest("is required (at most 200 characters)", "name")
    if r.backend not in REMOTE_BACKENDS:
        raise InvalidRequest(f"must be one of {list(REMOTE_BACKENDS)}", "backend")
    if not r.base_url.startswith(("http://", "https://")) or len(r.base_url) > 2048:
        raise InvalidRequest("must be an http(s) URL of at most 2048 characters", "base_url")
    if len(r.api_key) > 512 or len(r.remote_model) > 200:
        raise InvalidRequest("too long", "api_key" if len(r.api_key) > 512 else "remote_model")
