"""vLLM (GPU) as a backend, through its AsyncLLM engine.

Imported only when a route names `backend = "vllm"`: vLLM is a CUDA-only wheel and never a
CPU dependency. GPU pinning: the route's `device` ("cuda:1") becomes CUDA_VISIBLE_DEVICES
before vLLM initialises CUDA. JSON schemas and tool calls use vLLM's guided decoding.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator

from loom_common.ids import new_id
from loom_inference.engine.types import (
    BackendError,
    Delta,
    FinishReason,
    GenerateRequest,
    ModelInfo,
    Timings,
    Usage,
)
from loom_inference.prompting import tools
from loom_inference.prompting.tool_output import read_tool_output
from loom_inference.settings import ModelRoute, Performance


class VllmBackend:
    def __init__(self, info: ModelInfo, route: ModelRoute, perf: Performance) -> None:
        self.info = info
        self.route = route
        self.perf = perf
        self._engine = None
        self._active = 0

    async def start(self) -> None:
        if self._engine is not None:
            return
        if self.route.device and self.route.device.startswith("cuda"):
            os.environ["CUDA_VISIBLE_DEVICES"] = self.route.device.split(":", 1)[-1]
        try:
            from vllm import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise BackendError("vllm is not installed (pip install loom-inference[vllm] on a GPU machine)") from exc
        args = AsyncEngineArgs(model=self.route.path or self.route.remote_model or self.route.name,
                               max_num_seqs=self.perf.max_parallel, enable_prefix_caching=True)
        self._engine = AsyncLLM.from_engine_args(args)
        self.info.loaded = True

    def load(self) -> tuple[int, int]:
        return self._active, 0

    async def close(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None

    def _params(self, req: GenerateRequest, schema: str):
        from vllm import SamplingParams

        s = req.sampling
        kw = {"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k if s.top_k > 0 else -1,
              "repetition_penalty": s.repeat_penalty, "seed": s.seed, "max_tokens": s.max_tokens or 512,
              "stop": s.stop or None, "presence_penalty": s.presence_penalty,
              "frequency_penalty": s.frequency_penalty, "min_p": s.min_p}
        if schema:
            import json

            from vllm.sampling_params import GuidedDecodingParams

            kw["guided_decoding"] = GuidedDecodingParams(json=json.loads(schema))
        return SamplingParams(**kw)

    async def generate(self, req: GenerateRequest) -> AsyncIterator[Delta]:
        # Tools as for llama.cpp: the output decoded under the call/answer schema, the envelope
        # taken off on the way out, so callers see the same shape from every backend.
        messages, schema, envelope = tools.constrain(req)
        stream = self._generate(req, messages, schema)
        if envelope:
            stream = read_tool_output(stream)
        async with contextlib.aclosing(stream):
            async for delta in stream:
                yield delta

    async def _generate(self, req: GenerateRequest, messages: list, schema: str) -> AsyncIterator[Delta]:
        await self.start()
        assert self._engine is not None
        if req.messages:
            tok = await self._engine.get_tokenizer()
            prompt = tok.apply_chat_template([{"role": m.role, "content": m.content} for m in messages],
                                             tokenize=False, add_generation_prompt=True)
        else:
            prompt = req.prompt
        t0, first, sent = time.perf_counter(), 0.0, 0
        self._active += 1
        try:
            async for out in self._engine.generate(prompt, self._params(req, schema),
                                                   request_id=req.request_id or new_id()):
                comp = out.outputs[0]
                text = comp.text[sent:]
                sent = len(comp.text)
                if text:
                    first = first or time.perf_counter()
                    yield Delta(text=text, model=self.info.name)
                if out.finished:
                    end = time.perf_counter()
                    reason = FinishReason.LENGTH if comp.finish_reason == "length" else FinishReason.STOP
                    yield Delta(finish_reason=reason, model=self.info.name,
                                usage=Usage(len(out.prompt_token_ids or []), len(comp.token_ids)),
                                timings=Timings(ttft_ms=((first or end) - t0) * 1e3,
                                                decode_ms=(end - (first or end)) * 1e3, total_ms=(end - t0) * 1e3))
        finally:
            self._active -= 1
