"""Dynamic, length-bucketed batching of embedding requests.

A transformer pads every text of a batch to the batch's longest, so a batch mixing a 10-token
title with a 250-token paragraph spends most of its work on padding. The batcher therefore:

    1. takes every request waiting when the model becomes free (several documents being
       ingested at once, queries), up to `max_pending_texts` texts;
    2. sorts their texts by token count and cuts the sorted run into batches of at most
       `max_batch` texts and `max_batch_tokens` padded tokens (short texts go many to a batch,
       long ones few);
    3. runs the batches one after another on one worker thread and hands each request its
       vectors back in its own order.

The model's function gets token id lists and returns one row per list (numpy, float32).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np


def plan_batches(lengths: Sequence[int], *, max_batch: int, max_batch_tokens: int) -> list[list[int]]:
    """Indices of `lengths` grouped into batches of similar length (shortest first).

    A batch's cost is its size times its longest member (padding); each batch stays within
    `max_batch` members and `max_batch_tokens` padded tokens, and holds at least one text."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[i]  # sorted ascending: the newcomer is the longest so far
        if current and (len(current) + 1 > max_batch or (len(current) + 1) * longest > max_batch_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


@dataclass
class _Request:
    ids: list[list[int]]
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class DynamicBatcher:
    """Merges concurrent `embed` calls into length-bucketed batches run on one thread."""

    def __init__(self, run: Callable[[list[list[int]]], np.ndarray], pool: ThreadPoolExecutor, *,
                 max_batch: int = 64, max_batch_tokens: int = 8192, max_pending_texts: int = 512) -> None:
        self._run, self._pool = run, pool
        self.max_batch, self.max_batch_tokens, self.max_pending = max_batch, max_batch_tokens, max_pending_texts
        self._queue: list[_Request] = []
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self.batches_run = 0  # for tests and metrics: how many model calls were made

    async def embed(self, ids: list[list[int]]) -> np.ndarray:
        """One row per token list, in the caller's order."""
        if not ids:
            return np.zeros((0, 0), dtype=np.float32)
        req = _Request(ids)
        self._queue.append(req)
        if self._worker is None or self._worker.done():
            self._wake = asyncio.Event()
            self._worker = asyncio.create_task(self._drain())
        assert self._wake is not None
        self._wake.set()
        return await req.done

    async def _drain(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                take, texts = [], 0
                while self._queue and (not take or texts + len(self._queue[0].ids) <= self.max_pending):
                    req = self._queue.pop(0)
                    take.append(req)
                    texts += len(req.ids)
                await self._serve(take)

    async def _serve(self, requests: list[_Request]) -> None:
        live = [r for r in requests if not r.done.done()]  # a caller that gave up costs nothing
        flat = [ids for r in live for ids in r.ids]
        try:
            rows = await asyncio.get_running_loop().run_in_executor(self._pool, self._compute, flat)
        except Exception as exc:  # every waiting caller gets the model's error
            for r in live:
                if not r.done.done():
                    r.done.set_exception(exc)
            return
        start = 0
        for r in live:
            if not r.done.done():
                r.done.set_result(rows[start:start + len(r.ids)])
            start += len(r.ids)

    def _compute(self, flat: list[list[int]]) -> np.ndarray:
        out: np.ndarray | None = None
        for batch in plan_batches([len(ids) for ids in flat], max_batch=self.max_batch,
                                  max_batch_tokens=self.max_batch_tokens):
            rows = self._run([flat[i] for i in batch])
            if out is None:
                out = np.empty((len(flat), rows.shape[1]), dtype=np.float32)
            out[batch] = rows  # back to the callers' order
            self.batches_run += 1
        assert out is not None
        return out

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
