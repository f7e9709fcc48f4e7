"""Time to first token: `requests` streams one after another (concurrency 1), then `rounds`
bursts of N streams started together (concurrency N). Prompts are short and answers cut at a
few tokens: what is measured is queueing plus prefill plus the first decode step, the part a
user waits through before anything appears."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from loom_gateway.eval.metrics import latency_summary
from loom_gateway.eval.suite import TtftSpec
from loom_gateway.eval.targets import Reply, Target


def _sample(replies: list[Reply]) -> tuple[list[float], int, list[str]]:
    """(TTFTs of the answers that started, how many failed or never produced a token, errors)."""
    ok = [r.ttft_s for r in replies if not r.error and r.ttft_s is not None]
    errors = [r.error or "no token before the stream ended" for r in replies if r.error or r.ttft_s is None]
    return ok, len(errors), errors[:5]


async def measure_ttft(target: Target, spec: TtftSpec, concurrency: int | None = None,
                       progress: Callable[[str], None] = lambda _: None) -> dict:
    n = concurrency or spec.concurrency
    prompts = spec.prompts
    await target.ask(prompts[0], spec.max_tokens)  # warm-up (model load, connection), not counted

    single: list[Reply] = []
    for i in range(spec.requests):
        single.append(await target.ask(prompts[i % len(prompts)], spec.max_tokens))
    progress(f"ttft {target.label}: {spec.requests} sequential streams done")

    burst: list[Reply] = []
    for r in range(spec.rounds):
        batch = [prompts[(r * n + j) % len(prompts)] for j in range(n)]
        burst += await asyncio.gather(*(target.ask(p, spec.max_tokens) for p in batch))
    progress(f"ttft {target.label}: {spec.rounds} bursts of {n} streams done")

    out = {}
    for key, replies, c in (("concurrency_1", single, 1), (f"concurrency_{n}", burst, n)):
        samples, errors, messages = _sample(replies)
        out[key] = latency_summary(samples, errors, c)
        if messages:
            out[key]["error_examples"] = messages
    return out
