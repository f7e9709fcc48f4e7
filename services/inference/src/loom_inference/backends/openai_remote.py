"""Any OpenAI-compatible endpoint as a backend (the seed's MODEL_API_URL): chat completions
streamed over SSE; tools and response_format are passed through natively."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from loom_inference.backends.remote import RemoteHttpBackend, data_url, function_tools
from loom_inference.engine.types import (
    ChatMessage,
    Delta,
    FinishReason,
    GenerateRequest,
    ModelInfo,
    Timings,
    ToolCall,
    Usage,
)

_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH, "tool_calls": FinishReason.TOOL_CALLS}


def _message(m: ChatMessage) -> dict:
    """A message; with images, OpenAI's content parts: its images as data: URLs, then its text."""
    if not m.images:
        return {"role": m.role, "content": m.content}
    parts: list[dict] = [{"type": "image_url", "image_url": {"url": data_url(img)}} for img in m.images]
    return {"role": m.role, "content": [*parts, {"type": "text", "text": m.content}]}


def openai_body(req: GenerateRequest, remote_model: str) -> dict:
    s = req.sampling
    body: dict = {"model": remote_model, "stream": True, "temperature": s.temperature, "top_p": s.top_p,
                  "stream_options": {"include_usage": True}}
    if s.presence_penalty or s.frequency_penalty:
        body.update(presence_penalty=s.presence_penalty, frequency_penalty=s.frequency_penalty)
    if req.messages:
        body["messages"] = [_message(m) for m in req.messages]
    else:
        body["messages"] = [{"role": "user", "content": req.prompt}]
    if s.max_tokens:
        body["max_tokens"] = s.max_tokens
    if s.stop:
        body["stop"] = s.stop
    if s.seed is not None:
        body["seed"] = s.seed
    if req.tools:
        body["tools"] = function_tools(req.tools)
        if req.tool_choice:
            body["tool_choice"] = (req.tool_choice if req.tool_choice in ("auto", "none", "required")
                                   else {"type": "function", "function": {"name": req.tool_choice}})
    if req.json_schema:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "response", "schema": json.loads(req.json_schema)}}
    return body


class OpenAIRemoteBackend(RemoteHttpBackend):
    def __init__(self, info: ModelInfo, url: str, api_key: str | None, remote_model: str,
                 timeout_s: float = 120.0) -> None:
        super().__init__(info, url, remote_model, timeout_s=timeout_s,
                         headers={"Authorization": f"Bearer {api_key}"} if api_key else None)

    async def generate(self, req: GenerateRequest) -> AsyncIterator[Delta]:
        t0 = time.perf_counter()
        first = 0.0
        usage, finish, calls = Usage(), FinishReason.STOP, {}
        async with self.stream_lines("/chat/completions", openai_body(req, self.remote_model)) as lines:
            async for line in lines:
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                obj = json.loads(data)
                if obj.get("usage"):
                    usage = Usage(obj["usage"].get("prompt_tokens", 0), obj["usage"].get("completion_tokens", 0))
                for choice in obj.get("choices", []):
                    delta = choice.get("delta", {})
                    for tc in delta.get("tool_calls") or []:  # arguments arrive in pieces, by index
                        slot = calls.setdefault(tc.get("index", 0), {"id": "", "name": "", "arguments": ""})
                        slot["id"] = tc.get("id") or slot["id"]
                        fn = tc.get("function") or {}
                        slot["name"] += fn.get("name") or ""
                        slot["arguments"] += fn.get("arguments") or ""
                    if choice.get("finish_reason"):
                        finish = _FINISH.get(choice["finish_reason"], FinishReason.STOP)
                    if delta.get("content"):
                        first = first or time.perf_counter()
                        yield Delta(text=delta["content"], model=self.info.name)
        end = time.perf_counter()
        first = first or end
        yield Delta(finish_reason=finish, usage=usage, model=self.info.name,
                    tool_calls=[ToolCall(c["id"], c["name"], c["arguments"]) for c in calls.values()],
                    timings=Timings(ttft_ms=(first - t0) * 1e3, decode_ms=(end - first) * 1e3,
                                    total_ms=(end - t0) * 1e3))
