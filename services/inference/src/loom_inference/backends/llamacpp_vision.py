"""A llama.cpp model that reads images: its GGUF plus the multimodal projector (mmproj, Ollama's
`image.projector` layer) stored beside it, through llama-cpp-python's MTMD chat handler
(libmtmd, which the wheel ships: `llama_cpp.mtmd_cpp`).

It serves one request at a time on a worker thread: libmtmd puts the projector's image
embeddings into the KV cache itself, which Loom's batched runner (llamacpp.py) does not
drive, so a vision model does not share the batched engine. What it cannot do is refused
naming the field (tools, a JSON schema, fill-in-the-middle, logprobs), never ignored.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable

from loom_inference.engine.types import (
    BackendError,
    ChatMessage,
    Delta,
    FinishReason,
    GenerateRequest,
    InvalidRequest,
    ModelInfo,
    Timings,
    Usage,
)


def chat_messages(messages: list[ChatMessage]) -> list[dict]:
    """Engine messages -> the OpenAI-style messages the MTMD handler reads: each message's
    images as data-URL parts, in order, before its text (as Ollama places them)."""
    out = []
    for m in messages:
        if not m.images:
            out.append({"role": m.role, "content": m.content})
            continue
        parts: list[dict] = [{"type": "image_url", "image_url": {
            "url": f"data:{img.mime};base64,{base64.b64encode(img.data).decode()}"}} for img in m.images]
        parts.append({"type": "text", "text": m.content})
        out.append({"role": m.role, "content": parts})
    return out


def _refuse_unsupported(req: GenerateRequest) -> None:
    for field, wanted in (("tools", bool(req.tools)), ("format", bool(req.json_schema)),
                          ("suffix", bool(req.suffix)), ("logprobs", req.sampling.logprobs is not None)):
        if wanted:
            raise InvalidRequest(f"{req.model} (a vision model) does not support {field}", field)


class LlamaVisionBackend:
    def __init__(self, info: ModelInfo, path: Callable[[], str], projector: str, *, n_ctx: int = 4096,
                 n_threads: int | None = None) -> None:
        info.vision, info.projector = True, projector
        self.info = info
        self._path, self._n_ctx, self._n_threads = path, n_ctx, n_threads
        self._llm = None
        self._lock = asyncio.Lock()  # one request at a time (libmtmd's context is not shared)
        self._running = self._waiting = 0

    def _load(self):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import MTMDChatHandler

        path = self._path()
        handler = MTMDChatHandler(clip_model_path=self.info.projector, verbose=False)
        self._llm = Llama(model_path=path, chat_handler=handler, n_ctx=self._n_ctx, n_threads=self._n_threads,
                          verbose=False)
        self.info.path, self.info.context_length, self.info.loaded = path, self._n_ctx, True

    async def start(self) -> None:
        return None  # loads on its first request

    def load(self) -> tuple[int, int]:
        return self._running, self._waiting

    async def close(self) -> None:
        async with self._lock:
            llm, self._llm = self._llm, None
            self.info.loaded = False
            if llm is not None:
                await asyncio.to_thread(llm.close)

    async def generate(self, req: GenerateRequest) -> AsyncIterator[Delta]:
        _refuse_unsupported(req)
        messages = chat_messages(req.messages) or [{"role": "user", "content": req.prompt}]
        self._waiting += 1
        t0 = time.perf_counter()
        async with self._lock:
            self._waiting -= 1
            self._running += 1
            try:
                if self._llm is None:
                    try:
                        await asyncio.to_thread(self._load)
                    except Exception as exc:
                        raise BackendError(f"model {self.info.name} failed to load: {exc!r}") from exc
                async for delta in self._stream(messages, req, t0):
                    yield delta
            finally:
                self._running -= 1

    async def _stream(self, messages: list[dict], req: GenerateRequest, t0: float) -> AsyncIterator[Delta]:
        """The handler's synchronous stream on a worker thread, handed over through a queue;
        a client that goes away stops it at the next token."""
        s, loop, queue = req.sampling, asyncio.get_running_loop(), asyncio.Queue()
        stop = threading.Event()

        def run() -> None:
            try:
                for chunk in self._llm.create_chat_completion(  # type: ignore[union-attr]
                        messages=messages, stream=True, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                        min_p=s.min_p, repeat_penalty=s.repeat_penalty, presence_penalty=s.presence_penalty,
                        frequency_penalty=s.frequency_penalty, seed=s.seed, max_tokens=s.max_tokens,
                        stop=s.stop or None, mirostat_mode=s.mirostat, mirostat_tau=s.mirostat_tau,
                        mirostat_eta=s.mirostat_eta):
                    loop.call_soon_threadsafe(queue.put_nowait, chunk["choices"][0])
                    if stop.is_set():
                        break
            except Exception as exc:  # handed to the caller as a typed error
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = loop.run_in_executor(None, run)
        tokens, first_ms, reason = 0, 0.0, FinishReason.STOP
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, Exception):
                    raise BackendError(f"{self.info.name}: {item!r}") from item
                text = (item.get("delta") or {}).get("content") or ""
                if item.get("finish_reason") == "length":
                    reason = FinishReason.LENGTH
                if text:
                    tokens += 1
                    first_ms = first_ms or (time.perf_counter() - t0) * 1000
                    yield Delta(text=text)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await worker
        total = (time.perf_counter() - t0) * 1000
        yield Delta(finish_reason=reason, usage=Usage(0, tokens),
                    timings=Timings(ttft_ms=first_ms, decode_ms=total - first_ms, total_ms=total))
