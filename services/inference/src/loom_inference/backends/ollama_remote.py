"""An Ollama server as a backend: /api/chat streamed as NDJSON; `format` and `tools` are passed
through, Ollama's nanosecond timings mapped back to milliseconds."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator

from loom_inference.backends.remote import RemoteHttpBackend, function_tools
from loom_inference.engine.types import (
    BackendError,
    Delta,
    FinishReason,
    GenerateRequest,
    ModelInfo,
    Timings,
    ToolCall,
    Usage,
)


def ollama_body(req: GenerateRequest, remote_model: str) -> dict:
    s = req.sampling
    options: dict = {"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k,
                     "repeat_penalty": s.repeat_penalty, "repeat_last_n": s.repeat_last_n,
                     "presence_penalty": s.presence_penalty, "frequency_penalty": s.frequency_penalty,
                     "min_p": s.min_p, "mirostat": s.mirostat, "mirostat_tau": s.mirostat_tau,
                     "mirostat_eta": s.mirostat_eta}
    if s.max_tokens:
        options["num_predict"] = s.max_tokens
    if s.seed is not None:
        options["seed"] = s.seed
    if s.stop:
        options["stop"] = s.stop
    messages = ([{"role": m.role, "content": m.content,
                  **({"images": [base64.b64encode(i.data).decode() for i in m.images]} if m.images else {})}
                 for m in req.messages] if req.messages
                else [{"role": "user", "content": req.prompt}])
    body: dict = {"model": remote_model, "messages": messages, "stream": True, "options": options}
    if req.json_schema:
        body["format"] = json.loads(req.json_schema)
    if req.tools:
        body["tools"] = function_tools(req.tools)
    return body


class OllamaRemoteBackend(RemoteHttpBackend):
    def __init__(self, info: ModelInfo, url: str, remote_model: str, timeout_s: float = 120.0) -> None:
        super().__init__(info, url, remote_model, timeout_s=timeout_s)

    async def generate(self, req: GenerateRequest) -> AsyncIterator[Delta]:
        t0 = time.perf_counter()
        async with self.stream_lines("/api/chat", ollama_body(req, self.remote_model)) as lines:
            async for line in lines:
                if not line.strip():
                    continue
                obj = json.loads(line)
                if "error" in obj:
                    raise BackendError(f"{self.info.name}: {obj['error']}")
                msg = obj.get("message") or {}
                if not obj.get("done"):
                    if msg.get("content"):
                        yield Delta(text=msg["content"], model=self.info.name)
                    continue
                yield _final(obj, msg, self.info.name, t0)
                return


def _final(obj: dict, msg: dict, model: str, t0: float) -> Delta:
    calls = [ToolCall(f"call_{i}", c["function"]["name"], json.dumps(c["function"].get("arguments", {})))
             for i, c in enumerate(msg.get("tool_calls") or [])]
    reason = (FinishReason.TOOL_CALLS if calls else
              FinishReason.LENGTH if obj.get("done_reason") == "length" else FinishReason.STOP)

    def ms(key: str) -> float:
        return obj.get(key, 0) / 1e6  # Ollama reports nanoseconds

    return Delta(text=msg.get("content") or "", finish_reason=reason, tool_calls=calls, model=model,
                 usage=Usage(obj.get("prompt_eval_count", 0), obj.get("eval_count", 0)),
                 timings=Timings(prefill_ms=ms("prompt_eval_duration"), decode_ms=ms("eval_duration"),
                                 load_ms=ms("load_duration"), ttft_ms=ms("load_duration") + ms("prompt_eval_duration"),
                                 total_ms=ms("total_duration") or (time.perf_counter() - t0) * 1e3))
