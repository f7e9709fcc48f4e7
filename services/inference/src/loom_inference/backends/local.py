"""A local model served by the batching engine: templates, grammars and limits around `Engine`.

The model loads in the background on the engine's bridge thread (start-up stays fast); the
first request waits for it. Tokenizing runs on the event loop: it only reads the vocabulary,
which llama.cpp never mutates, so it needs no turn on the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from loom_common.ids import new_id
from loom_inference.backends.base import ModelRunner
from loom_inference.engine.engine import Engine
from loom_inference.engine.sequence import EngineRequest
from loom_inference.engine.types import (
    BackendError,
    ChatMessage,
    ContextTooLong,
    Delta,
    GenerateRequest,
    InvalidRequest,
    ModelInfo,
)
from loom_inference.prompting import templates, thinking, tools
from loom_inference.prompting.tool_output import read_tool_output


def lower_thread_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by `nice` (Linux: nice is per thread).

    Called on the bridge thread before the model loads: the compute threads llama.cpp starts
    from it (its OpenMP team) inherit the value, while the event loop thread serving requests
    keeps its own. Measured with `bench/gateway.py --quick` on 2 cores: a chat's added time to
    first token at 8 streams fell from ~230 to ~100 ms, because the gateway and orchestrator no
    longer wait for CPU behind the decode threads."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):  # not permitted here: run at the normal priority
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)


class LocalBackend:
    def __init__(self, info: ModelInfo, load_runner: Callable[[], ModelRunner], *,
                 grammar_from_schema: Callable[[str], str], max_waiting: int = 256,
                 default_max_tokens: int = 512, prefix_cache: bool = True) -> None:
        self.info = info
        self._load_runner = load_runner
        self._grammar = grammar_from_schema
        self._max_waiting = max_waiting
        self._default_max_tokens = default_max_tokens
        self._prefix_cache = prefix_cache
        self._bridge = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"bridge-{info.name}")
        self._loading: asyncio.Task | None = None
        self.engine: Engine | None = None
        self.runner: ModelRunner | None = None
        self._render: templates.Renderer | None = None
        self._stops: list[str] = []
        self.load_ms = 0.0

    async def start(self) -> None:
        if self._loading is None:
            self._loading = asyncio.create_task(self._load())

    async def _load(self) -> None:
        t0 = time.perf_counter()
        runner = await asyncio.get_running_loop().run_in_executor(self._bridge, self._load_runner)
        meta = runner.metadata()
        # A Modelfile's TEMPLATE first, then the GGUF's own, then the family's format.
        self._render, _ = templates.renderer_for(meta, self.info.template or runner.chat_template())
        self._stops = templates.stops_for(meta)
        self.info.thinking = thinking.is_reasoning_model(meta, self.info.template or runner.chat_template() or "")
        self.runner = runner
        self.engine = Engine(runner, model_name=self.info.name, max_waiting=self._max_waiting, bridge=self._bridge,
                             prefix_cache=self._prefix_cache)
        self.engine.start()
        self.info.context_length = self.context_limit
        memory = getattr(runner, "memory_bytes", None)
        self.info.memory_bytes = memory() if memory is not None else self.info.size_bytes
        self.info.loaded = True
        self.load_ms = (time.perf_counter() - t0) * 1000

    async def ready(self) -> Engine:
        await self.start()
        assert self._loading is not None
        try:
            await asyncio.shield(self._loading)
        except Exception as exc:
            raise BackendError(f"model {self.info.name} failed to load: {exc!r}") from exc
        assert self.engine is not None
        return self.engine

    @property
    def context_limit(self) -> int:
        r = self.runner
        if r is None:
            return 0
        return min(r.n_ctx, getattr(r, "context_length", r.n_ctx) or r.n_ctx)

    def load(self) -> tuple[int, int]:
        return (self.engine.num_running, self.engine.num_waiting) if self.engine else (0, 0)

    async def close(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        if self.engine is not None:
            await self.engine.close()
        self.info.loaded = False

    @property
    def resident(self) -> bool:
        """Loaded or loading: it holds (or is about to hold) its memory."""
        return self._loading is not None

    async def unload(self) -> None:
        """Free the model and its KV cache (router/lifecycle.py decides when); the next request
        loads it again. Only called while no request uses it."""
        loading = self._loading
        if loading is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.shield(loading)  # a load on the bridge thread cannot be cut short
        engine = self.engine
        self._loading, self.engine, self.runner, self._render = None, None, None, None
        self.info.loaded, self.info.memory_bytes = False, 0
        if engine is not None:
            await engine.close()  # frees the context and the weights on the bridge, ends the bridge
        else:
            self._bridge.shutdown(wait=False)
        self._bridge = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"bridge-{self.info.name}")

    # ---- generation ------------------------------------------------------------------

    def _prompt(self, req: GenerateRequest) -> tuple[str, str, bool]:
        """(prompt text, JSON schema the output must match or "", whether it is the tool envelope)."""
        messages, schema, envelope = tools.constrain(req)
        if req.messages:
            assert self._render is not None
            return self._render(self._with_profile(messages)), schema, envelope
        return req.prompt, schema, envelope

    def _fill_in_the_middle(self, prefix: str, suffix: str) -> list[int]:
        """BOS <fim_pre> prefix <fim_suf> suffix <fim_mid>: the model writes what goes between,
        when its vocabulary has those tokens (code models); a 400 naming `suffix` otherwise."""
        fim = getattr(self.runner, "fim_tokens", lambda: None)()
        if fim is None:
            raise InvalidRequest(f"{self.info.name} has no fill-in-the-middle tokens; suffix needs a model "
                                 "that has them (a code model such as qwen2.5-coder)", "suffix")
        pre, suf, mid = fim
        bos = self.runner.tokenize("", add_bos=True)
        return [*bos, pre, *self.runner.tokenize(prefix, add_bos=False), suf,
                *self.runner.tokenize(suffix, add_bos=False), mid]

    @staticmethod
    def _request_window(num_ctx: int, prompt_tokens: int, limit: int) -> int:
        """A request's own context window (Ollama's num_ctx) within the model's. Beyond it, a
        clear 400: the model's context is one KV cache shared by every running sequence, so a
        bigger one means a reload with a bigger n_ctx, which would break every running stream."""
        field = "options.num_ctx"
        if num_ctx < 1:
            raise InvalidRequest("must be a positive number of tokens", field)
        if num_ctx > limit:
            raise InvalidRequest(f"{num_ctx} is more than this model's context of {limit} tokens "
                                 "(the engine's [performance] n_ctx, or the model's own)", field)
        if prompt_tokens >= num_ctx:
            raise InvalidRequest(f"the prompt has {prompt_tokens} tokens, num_ctx is {num_ctx}", field)
        return num_ctx

    def _with_profile(self, messages: list[ChatMessage]) -> list[ChatMessage]:
        """A Modelfile's SYSTEM (unless the request brings its own) and MESSAGE turns, before
        the request's conversation."""
        info = self.info
        if not info.system and not info.messages:
            return messages
        lead = 0
        while lead < len(messages) and messages[lead].role == "system":
            lead += 1
        system = messages[:lead] or ([ChatMessage("system", info.system)] if info.system else [])
        preset = [ChatMessage(m["role"], m["content"]) for m in info.messages]
        return [*system, *preset, *messages[lead:]]

    async def generate(self, req: GenerateRequest) -> AsyncIterator[Delta]:
        engine = await self.ready()
        assert self.runner is not None
        if req.think and not self.info.thinking:
            raise InvalidRequest(f"{self.info.name} does not support thinking", "think")
        text, schema, envelope = self._prompt(req)
        grammar = None
        if schema:
            try:
                grammar = self._grammar(schema)
            except Exception as exc:
                raise InvalidRequest(f"not a usable JSON schema: {exc}", "json_schema") from exc
        if req.suffix:
            prompt_ids = self._fill_in_the_middle(req.prompt, req.suffix)
        else:
            prompt_ids = self.runner.tokenize(text, add_bos=True)  # raw = no template, BOS still
        if not prompt_ids:
            raise InvalidRequest("empty prompt", "prompt")
        limit = self.context_limit
        field = "messages" if req.messages else "prompt"
        if req.num_ctx is not None:
            limit = self._request_window(req.num_ctx, len(prompt_ids), limit)
        if len(prompt_ids) >= limit:
            raise ContextTooLong(len(prompt_ids) + 1, limit, field)
        max_tokens = req.sampling.max_tokens
        if max_tokens is not None and max_tokens > 0:
            if req.num_ctx is not None:  # Ollama: the answer stops where the window ends
                max_tokens = min(max_tokens, limit - len(prompt_ids))
            elif len(prompt_ids) + max_tokens > limit:
                raise ContextTooLong(len(prompt_ids) + max_tokens, limit, "sampling.max_tokens")
        else:
            max_tokens = min(self._default_max_tokens, limit - len(prompt_ids))
        sampling = req.sampling
        if req.messages and self._stops:
            sampling = type(sampling)(**{**sampling.__dict__, "stop": [*sampling.stop, *self._stops]})
        ereq = EngineRequest(request_id=req.request_id or new_id(), prompt_ids=prompt_ids, sampling=sampling,
                             max_tokens=max_tokens, grammar=grammar)
        stream = engine.generate(ereq)
        if envelope:
            stream = read_tool_output(stream)  # the JSON envelope off: answer text, or a whole call
        elif self.info.thinking and not req.suffix:
            stream = thinking.split_thinking(stream, keep=req.think is not False)
        async with contextlib.aclosing(stream):  # closed with us: the engine aborts the sequence now
            async for delta in stream:
                yield delta
