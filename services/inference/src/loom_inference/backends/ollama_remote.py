"""An Ollama server as a backend: /api/chat streamed as NDJSON with httpx; `format` and
`tools` are passed through, Ollama's nanosecond timings mapped back to milliseconds."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx

from loom_inference.backends.openai_remote import _raise_for
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
                     "repeat_penalty": s.repeat_penalty}
    if s.max_tokens:
        options["num_predict"] = s.max_tokens
    if s.seed is not None:
        options["seed"] = s.seed
    if s.stop:
        options["stop"] = s.stop
    messages = ([{"role": m.role, "content": m.content} for m in req.messages] if req.messages
                else [{"role": "user", "content": req.prompt}])
    body: dict = {"model": remote_model, "messages": messages, "stream": True, "options": options}
    if req.json_schema:
        body["format"] = json.loads(req.json_schema)
    if req.tools:
        body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                           "parameters": t.parameters or {}}} for t in req.tools]
    return body


class OllamaRemoteBackend:
    def __init__(self, info: ModelInfo, url: str, remote_model: str, timeout_s: float = 120.0) -> None:
        self.info = info
        self.info.loaded = True
        self.url = url.rstrip("/")
        self.remote_model = remote_model
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10.0))
        self._active = 0

    async def start(self) -> None:
        return None

    def load(self) -> tuple[int, int]:
        return self._active, 0

    async def close(self) -> None:
        await self._client.aclose()

    async def generate(self, req: GenerateRequest) -> AsyncIterator[Delta]:
        if not self.url:
            raise BackendError(f"{self.info.name}: no url configured (MODEL_API_URL)")
        t0 = time.perf_counter()
        self._active += 1
        try:
            async with self._client.stream("POST", f"{self.url}/api/chat",
                                           json=ollama_body(req, self.remote_model)) as resp:
                if resp.status_code >= 400:
                    _raise_for(resp, (await resp.aread()).decode(errors="replace"))
                async for line in resp.aiter_lines():
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
                    calls = [ToolCall(f"call_{i}", c["function"]["name"],
                                      json.dumps(c["function"].get("arguments", {})))
                             for i, c in enumerate(msg.get("tool_calls") or [])]
                    reason = (FinishReason.TOOL_CALLS if calls else
                              FinishReason.LENGTH if obj.get("done_reason") == "length" else FinishReason.STOP)
                    final = obj

                    def ms(key: str, final: dict = final) -> float:
                        return final.get(key, 0) / 1e6  # Ollama reports nanoseconds
                    yield Delta(text=msg.get("content") or "", finish_reason=reason, tool_calls=calls,
                                model=self.info.name,
                                usage=Usage(obj.get("prompt_eval_count", 0), obj.get("eval_count", 0)),
                                timings=Timings(prefill_ms=ms("prompt_eval_duration"), decode_ms=ms("eval_duration"),
                                                load_ms=ms("load_duration"),
                                                ttft_ms=ms("load_duration") + ms("prompt_eval_duration"),
                                                total_ms=ms("total_duration") or (time.perf_counter() - t0) * 1e3))
                    return
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.info.name}: {exc!r}") from exc
        finally:
            self._active -= 1
