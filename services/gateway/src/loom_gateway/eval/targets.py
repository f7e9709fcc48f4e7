"""What `loom eval` measures, behind one small interface.

    OpenAITarget   any OpenAI-compatible chat API, streamed: the inference service (:11434/v1),
                   the gateway's /v1 with an app key, or a remote provider
    DifyAppTarget  an app through the gateway's Dify API (/v1/chat-messages, streamed), its
                   conversation kept server-side by conversation_id

A target answers one turn (`ask`) and opens conversations (`conversation().say`). Every answer is
a `Reply`: the text, any tool calls, and the time to its first token, measured from sending the
request to the first non-empty content (or tool-call) delta. Transport failures become a Reply
with `error` set: one failed request is a data point (an error count), not the end of the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from loom_common import tls
from loom_gateway.eval.checker import ModelCall

MAX_ANSWER_CHARS = 200_000   # a runaway stream is cut here rather than held in memory


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[ModelCall] = field(default_factory=list)
    ttft_s: float | None = None
    total_s: float = 0.0
    error: str = ""
    finish_reason: str = ""   # "length": cut at max_tokens (OpenAI targets)


class Conversation(Protocol):
    async def say(self, text: str, max_tokens: int) -> Reply: ...


class Target(Protocol):
    label: str
    supports_tools: bool

    def describe(self) -> dict: ...
    async def ask(self, prompt: str, max_tokens: int, tools: list[dict] | None = None,
                  tool_choice: str | None = None) -> Reply: ...
    def conversation(self) -> Conversation: ...
    async def aclose(self) -> None: ...


async def _sse_data(resp: httpx.Response) -> AsyncIterator[dict]:
    """The JSON payloads of an SSE stream's `data:` lines ([DONE] ends it)."""
    async for line in resp.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        if data:
            try:
                obj = json.loads(data)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                yield obj


def _http_error(resp: httpx.Response, body: bytes) -> str:
    text = body.decode(errors="replace")[:300]
    return f"HTTP {resp.status_code}: {text}"


class OpenAITarget:
    supports_tools = True

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, label: str | None = None,
                 timeout_s: float = 300.0, temperature: float = 0.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.label = label or model
        self.temperature = temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10.0), headers=headers,
                                       limits=httpx.Limits(max_connections=256), verify=tls.httpx_verify())

    def describe(self) -> dict:  # never the key
        return {"kind": "openai", "base_url": self.base_url, "model": self.model}

    async def chat(self, messages: list[dict], max_tokens: int, tools: list[dict] | None = None,
                   tool_choice: str | None = None) -> Reply:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True,
                                "max_tokens": max_tokens, "temperature": self.temperature}
        if tools:
            body["tools"] = [{"type": "function", "function": t} for t in tools]
            body["tool_choice"] = tool_choice or "auto"
        reply, parts, calls = Reply(), [], {}
        t0 = time.perf_counter()
        try:
            async with self._http.stream("POST", f"{self.base_url}/chat/completions", json=body) as resp:
                if resp.status_code >= 400:
                    reply.error = _http_error(resp, await resp.aread())
                    return reply
                size = 0
                async for obj in _sse_data(resp):
                    if "error" in obj:
                        reply.error = str(obj["error"])[:300]
                        break
                    for choice in obj.get("choices") or []:
                        delta = choice.get("delta") or {}
                        text = delta.get("content") or ""
                        pieces = delta.get("tool_calls") or []
                        if (text or pieces) and reply.ttft_s is None:
                            reply.ttft_s = time.perf_counter() - t0
                        parts.append(text)
                        size += len(text)
                        reply.finish_reason = choice.get("finish_reason") or reply.finish_reason
                        for tc in pieces:  # streamed in pieces, keyed by index
                            slot = calls.setdefault(tc.get("index", len(calls)), {"name": "", "arguments": ""})
                            fn = tc.get("function") or {}
                            slot["name"] += fn.get("name") or ""
                            slot["arguments"] += fn.get("arguments") or ""
                            size += len(fn.get("arguments") or "")
                    if size > MAX_ANSWER_CHARS:
                        reply.error = f"answer longer than {MAX_ANSWER_CHARS} characters: cut"
                        break
        except httpx.HTTPError as exc:
            reply.error = f"{type(exc).__name__}: {exc}"[:300]
        reply.total_s = time.perf_counter() - t0
        reply.text = "".join(parts)
        reply.tool_calls = [ModelCall(c["name"], c["arguments"]) for _, c in sorted(calls.items())]
        return reply

    async def ask(self, prompt: str, max_tokens: int, tools: list[dict] | None = None,
                  tool_choice: str | None = None) -> Reply:
        return await self.chat([{"role": "user", "content": prompt}], max_tokens, tools, tool_choice)

    def conversation(self) -> _OpenAIConversation:
        return _OpenAIConversation(self)

    async def aclose(self) -> None:
        await self._http.aclose()


class _OpenAIConversation:
    """The history is the client's: every turn sends all the turns before it."""

    def __init__(self, target: OpenAITarget) -> None:
        self.target = target
        self.messages: list[dict] = []

    async def say(self, text: str, max_tokens: int) -> Reply:
        self.messages.append({"role": "user", "content": text})
        reply = await self.target.chat(self.messages, max_tokens)
        self.messages.append({"role": "assistant", "content": reply.text})
        return reply


class DifyAppTarget:
    """A chat app (chat, advanced-chat, agent) through the gateway's Dify API. The app decides
    the model, the prompt and the memory window; max_tokens is the app's, not ours."""
    supports_tools = False

    def __init__(self, gateway_url: str, app_key: str, *, label: str = "app", user: str = "loom-eval",
                 timeout_s: float = 300.0) -> None:
        self.base_url = gateway_url.rstrip("/")
        self.label = label
        self.user = user
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10.0),
                                       headers={"Authorization": f"Bearer {app_key}"},
                                       limits=httpx.Limits(max_connections=256), verify=tls.httpx_verify())

    def describe(self) -> dict:
        return {"kind": "dify-app", "base_url": self.base_url}

    async def send(self, query: str, conversation_id: str) -> tuple[Reply, str]:
        body = {"query": query, "inputs": {}, "response_mode": "streaming", "user": self.user,
                "conversation_id": conversation_id, "auto_generate_name": False}
        reply, parts = Reply(), []
        t0 = time.perf_counter()
        try:
            async with self._http.stream("POST", f"{self.base_url}/v1/chat-messages", json=body) as resp:
                if resp.status_code >= 400:
                    reply.error = _http_error(resp, await resp.aread())
                    return reply, conversation_id
                async for obj in _sse_data(resp):
                    conversation_id = obj.get("conversation_id") or conversation_id
                    event = obj.get("event")
                    if event == "error":
                        reply.error = f"{obj.get('code')}: {obj.get('message')}"[:300]
                        break
                    text = obj.get("answer") if event in ("message", "agent_message") else None
                    if text:
                        reply.ttft_s = reply.ttft_s if reply.ttft_s is not None else time.perf_counter() - t0
                        parts.append(text)
                    if event == "message_end" or sum(map(len, parts)) > MAX_ANSWER_CHARS:
                        break
        except httpx.HTTPError as exc:
            reply.error = f"{type(exc).__name__}: {exc}"[:300]
        reply.total_s = time.perf_counter() - t0
        reply.text = "".join(parts)
        return reply, conversation_id

    async def ask(self, prompt: str, max_tokens: int, tools: list[dict] | None = None,
                  tool_choice: str | None = None) -> Reply:
        if tools:
            raise NotImplementedError("an app's tools are its own: tool-call cases need an OpenAI-compatible target")
        return (await self.send(prompt, ""))[0]

    def conversation(self) -> _DifyConversation:
        return _DifyConversation(self)

    async def aclose(self) -> None:
        await self._http.aclose()


class _DifyConversation:
    def __init__(self, target: DifyAppTarget) -> None:
        self.target = target
        self.conversation_id = ""

    async def say(self, text: str, max_tokens: int) -> Reply:
        reply, self.conversation_id = await self.target.send(text, self.conversation_id)
        return reply
