"""The async step loop: add and abort requests, one model step at a time, per-request streams.

    loop: schedule() -> Batch  ->  runner.execute(batch) on the bridge thread  ->
          update(batch, result) -> (sequence, token) pairs -> detokenize, check stop
          conditions, push a Delta onto each request's own queue.

The runner is only ever touched from ONE dedicated thread (the bridge): llama.cpp contexts
are not thread-safe, and ctypes releases the GIL during `llama_decode`, so the event loop
keeps serving gRPC and HTTP while the model computes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from loom_common.logging import get_logger
from loom_inference.backends.base import ModelRunner
from loom_inference.engine import metrics
from loom_inference.engine.output import Detokenizer
from loom_inference.engine.scheduler import Scheduler
from loom_inference.engine.sequence import EngineRequest, Sequence, SequenceStatus
from loom_inference.engine.types import ContextTooLong, Delta, Timings, TokenLogprob, Usage

log = get_logger("inference.engine")


@dataclass
class _Stream:
    seq: Sequence
    detok: Detokenizer
    queue: asyncio.Queue[Delta] = field(default_factory=asyncio.Queue)
    logprobs: list[TokenLogprob] = field(default_factory=list)  # not yet handed out with a delta

    def take_logprobs(self) -> list[TokenLogprob]:
        out, self.logprobs = self.logprobs, []
        return out


def _ms(a: float, b: float) -> float:
    return max(0.0, (b - a) * 1000.0) if a and b else 0.0


class Engine:
    def __init__(self, runner: ModelRunner, *, model_name: str, max_waiting: int = 256,
                 bridge: ThreadPoolExecutor | None = None, prefix_cache: bool = True) -> None:
        self.runner = runner
        self.model_name = model_name
        self.scheduler = Scheduler(max_seqs=runner.max_seqs, token_budget=runner.n_batch,
                                   kv_capacity=runner.n_ctx, prefix_cache=prefix_cache)
        self.scheduler.waiting.max_waiting = max_waiting  # type: ignore[attr-defined]
        self._bridge = bridge or ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-bridge")
        self._streams: dict[str, _Stream] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.steps = 0
        self.yield_rounds = 3

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"engine:{self.model_name}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for stream in list(self._streams.values()):
            self._finish(stream, SequenceStatus.FINISHED_ABORTED)
        await asyncio.get_running_loop().run_in_executor(self._bridge, self.runner.close)
        self._bridge.shutdown(wait=False)

    @property
    def num_running(self) -> int:
        return len(self.scheduler.running)

    @property
    def num_waiting(self) -> int:
        return len(self.scheduler.waiting)

    # ---- requests --------------------------------------------------------------------

    async def generate(self, req: EngineRequest) -> AsyncIterator[Delta]:
        """Stream deltas for one request; closing the iterator (client gone) aborts it."""
        if req.request_id in self._streams:
            raise ValueError(f"duplicate request id {req.request_id}")
        seq = Sequence(req)
        if seq.reserved_tokens > self.scheduler.kv_capacity:  # could never be admitted
            raise ContextTooLong(seq.reserved_tokens, self.scheduler.kv_capacity, "sampling.max_tokens")
        stream = _Stream(seq, Detokenizer(self.runner.token_bytes, req.sampling.stop))
        self.scheduler.add(seq)  # raises Overloaded when the queue is full
        self._streams[req.request_id] = stream
        self._gauges()
        self._wake.set()
        self.start()
        try:
            while True:
                delta = await stream.queue.get()
                yield delta
                if delta.finished:
                    return
        finally:
            if not seq.status.finished:
                self.abort(req.request_id)

    def abort(self, request_id: str) -> None:
        stream = self._streams.get(request_id)
        if stream is not None:
            self._finish(stream, SequenceStatus.FINISHED_ABORTED)
            self._wake.set()  # the next step frees the slot

    # ---- the loop --------------------------------------------------------------------

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.scheduler.has_work():
                self._wake.clear()
                await self._wake.wait()
                continue
            # Let the consumers of the last step's deltas (gRPC/HTTP writers) run first: on a
            # CPU box, work that overlaps a decode preempts one of llama.cpp's threads and the
            # others stall at its barrier, which costs far more than this short wait.
            for _ in range(self.yield_rounds):
                await asyncio.sleep(0)
            batch = self.scheduler.schedule()
            try:
                result = await loop.run_in_executor(self._bridge, self.runner.execute, batch)
            except Exception as exc:  # the model failed: fail every sequence it carried
                log.error("engine step failed", error=repr(exc), model=self.model_name)
                for stream in [s for s in self._streams.values() if s.seq.status == SequenceStatus.RUNNING]:
                    self._finish(stream, SequenceStatus.FINISHED_ERROR, repr(exc))
                continue
            self.steps += 1
            if batch.entries:
                metrics.BATCH_TOKENS.labels(self.model_name).observe(batch.num_tokens)
            for slot, err in result.failed.items():
                for stream in self._streams.values():
                    if stream.seq.slot == slot and not stream.seq.status.finished:
                        self._finish(stream, SequenceStatus.FINISHED_ERROR, err)
            for seq, token in self.scheduler.update(batch, result):
                stream = self._streams.get(seq.request_id)
                if stream is not None and not seq.status.finished:
                    if seq.slot in result.logprobs:
                        stream.logprobs.append(self._token_logprob(token, *result.logprobs[seq.slot]))
                    self._on_token(stream, token)
            self._gauges()

    def _on_token(self, stream: _Stream, token: int) -> None:
        seq = stream.seq
        now = time.perf_counter()
        if seq.first_token == 0.0:
            seq.first_token = now
        else:
            metrics.ITL.labels(self.model_name).observe(now - seq.last_token)
        seq.last_token = now
        if self.runner.is_eog(token):
            seq.output_ids.pop()  # the end-of-generation token is not part of the answer
            if stream.logprobs:
                stream.logprobs.pop()
            self._finish(stream, SequenceStatus.FINISHED_STOPPED)
            return
        text = stream.detok.add(token)
        if text:
            stream.queue.put_nowait(Delta(text=text, token_ids=[token], model=self.model_name,
                                          logprobs=stream.take_logprobs()))
        if stream.detok.stopped:
            self._finish(stream, SequenceStatus.FINISHED_STOPPED)
        elif len(seq.output_ids) >= seq.req.max_tokens:
            self._finish(stream, SequenceStatus.FINISHED_LENGTH)

    def _finish(self, stream: _Stream, status: SequenceStatus, error: str = "") -> None:
        seq = stream.seq
        if seq.status.finished and seq.request_id not in self._streams:
            return
        self.scheduler.finish(seq, status, error)
        self._streams.pop(seq.request_id, None)
        tail = stream.detok.flush()
        timings = self._timings(seq)
        usage = Usage(prompt_tokens=seq.prompt_len, completion_tokens=len(seq.output_ids))
        stream.queue.put_nowait(Delta(text=tail, finish_reason=seq.status.reason, usage=usage,
                                      timings=timings, model=self.model_name, logprobs=stream.take_logprobs()))
        self._observe(seq, timings, usage)
        if error:
            log.warning("sequence failed", request_id=seq.request_id, error=error)

    def _token_logprob(self, token: int, logprob: float, top: list[tuple[int, float]]) -> TokenLogprob:
        def one(t: int, lp: float) -> TokenLogprob:
            raw = self.runner.token_bytes(t)
            return TokenLogprob(raw.decode("utf-8", errors="replace"), lp, list(raw))
        out = one(token, logprob)
        out.top = [one(t, lp) for t, lp in top]
        return out

    @staticmethod
    def _timings(seq: Sequence) -> Timings:
        end = seq.finished_at or time.perf_counter()
        return Timings(queue_ms=_ms(seq.arrived, seq.scheduled or end),
                       prefill_ms=_ms(seq.scheduled, seq.first_token),
                       ttft_ms=_ms(seq.arrived, seq.first_token),
                       decode_ms=_ms(seq.first_token, seq.last_token),
                       total_ms=_ms(seq.arrived, end))

    def _observe(self, seq: Sequence, t: Timings, usage: Usage) -> None:
        m = self.model_name
        metrics.SUCCESS.labels(m, seq.status.reason.value if seq.status.reason else "unknown").inc()
        metrics.QUEUE.labels(m).observe(t.queue_ms / 1000)
        metrics.E2E.labels(m).observe(t.total_ms / 1000)
        if seq.first_token:
            metrics.TTFT.labels(m).observe(t.ttft_ms / 1000)
            metrics.PREFILL.labels(m).observe(t.prefill_ms / 1000)
            metrics.DECODE.labels(m).observe(t.decode_ms / 1000)
        metrics.PROMPT_TOKENS.labels(m).inc(seq.num_computed)
        metrics.PREFIX_CACHE_QUERIES.labels(m).inc(seq.prompt_len)
        metrics.PREFIX_CACHE_HITS.labels(m).inc(seq.reused)
        metrics.GENERATION_TOKENS.labels(m).inc(usage.completion_tokens)

    def _gauges(self) -> None:
        metrics.RUNNING.labels(self.model_name).set(self.num_running)
        metrics.WAITING.labels(self.model_name).set(self.num_waiting)
