"""The engine core with the deterministic fake runner: batching, queueing beyond
max_parallel, chunked prefill, stop strings, max tokens, abort frees the slot, one thread."""

from __future__ import annotations

import asyncio

import pytest

from loom_inference.backends.fake import FakeRunner
from loom_inference.backends.local import LocalBackend
from loom_inference.engine.engine import Engine
from loom_inference.engine.output import Detokenizer
from loom_inference.engine.scheduler import Scheduler, StepResult
from loom_inference.engine.sequence import EngineRequest, Sequence, SequenceStatus
from loom_inference.engine.types import (
    ChatMessage,
    ContextTooLong,
    FinishReason,
    GenerateRequest,
    ModelInfo,
    Overloaded,
    SamplingParams,
)


def _req(rid: str, prompt: list[int], max_tokens: int = 5, stop: list[str] | None = None) -> EngineRequest:
    return EngineRequest(rid, prompt, SamplingParams(temperature=0, stop=stop or []), max_tokens)


async def _collect(engine: Engine, req: EngineRequest):
    return [d async for d in engine.generate(req)]


async def test_inference_batches_many_sequences_into_one_step_and_queues_the_rest() -> None:
    runner = FakeRunner(max_seqs=2, n_batch=64)
    engine = Engine(runner, model_name="fake")
    outs = await asyncio.gather(*(_collect(engine, _req(f"r{i}", [1, 10 + i], 4)) for i in range(5)))
    for out in outs:
        assert out[-1].finish_reason == FinishReason.LENGTH and out[-1].usage.completion_tokens == 4
    # never more than max_parallel sequences in a step, and several in most
    per_step = [len(b.entries) for b in runner.batches if b.entries]
    assert max(per_step) == 2 and per_step.count(2) >= 4
    assert runner.threads and len(runner.threads) == 1  # the single bridge thread
    await engine.close()


async def test_inference_batched_output_equals_solo_output() -> None:
    solo_engine = Engine(FakeRunner(max_seqs=1), model_name="fake")
    solo = [await _collect(solo_engine, _req(f"s{i}", [1, 20 + i], 6)) for i in range(4)]
    engine = Engine(FakeRunner(max_seqs=4), model_name="fake")
    batched = await asyncio.gather(*(_collect(engine, _req(f"b{i}", [1, 20 + i], 6)) for i in range(4)))
    assert ["".join(d.text for d in o) for o in solo] == ["".join(d.text for d in o) for o in batched]
    await solo_engine.close()
    await engine.close()


def test_inference_long_prompt_is_prefilled_in_chunks_beside_running_decodes() -> None:
    sched = Scheduler(max_seqs=2, token_budget=8, kv_capacity=1000)
    short = Sequence(_req("short", [1, 2], 10))
    long = Sequence(_req("long", list(range(10, 39)), 10))  # shares no prefix with `short`
    sched.add(short)
    b1 = sched.schedule()
    sched.update(b1, StepResult(sampled={short.slot: 5}))
    sched.add(long)
    b2 = sched.schedule()
    assert [len(e.tokens) for e in b2.entries] == [1, 7]  # one decode + a 7-token prefill chunk
    assert not b2.entries[1].sample
    sched.update(b2, StepResult(sampled={short.slot: 6}))
    b3 = sched.schedule()
    assert [len(e.tokens) for e in b3.entries] == [1, 7] and b3.entries[1].start_pos == 7


def test_inference_admission_respects_kv_capacity() -> None:
    sched = Scheduler(max_seqs=4, token_budget=64, kv_capacity=30)
    a, b = Sequence(_req("a", [1] * 10, 10)), Sequence(_req("b", [1] * 10, 10))
    sched.add(a)
    sched.add(b)
    sched.schedule()
    assert len(sched.running) == 1 and len(sched.waiting) == 1  # 20 + 20 > 30 cells


def test_inference_next_prompt_starts_from_the_cached_prefix() -> None:
    sched = Scheduler(max_seqs=2, token_budget=64, kv_capacity=1000)
    turn1 = Sequence(_req("t1", [1, 2, 3, 4, 5], 3))
    sched.add(turn1)
    b1 = sched.schedule()
    sched.update(b1, StepResult(sampled={turn1.slot: 7}))
    b2 = sched.schedule()
    sched.update(b2, StepResult(sampled={turn1.slot: 8}))
    sched.finish(turn1, SequenceStatus.FINISHED_STOPPED)  # cells hold 1 2 3 4 5 7 (8 never fed)
    turn2 = Sequence(_req("t2", [1, 2, 3, 4, 5, 7, 8, 9], 3))  # history + answer + a new message
    sched.add(turn2)
    b3 = sched.schedule()
    assert turn2.slot == turn1.slot and turn2.reused == 6
    assert (turn1.slot, 6) in b3.evict and not b3.reset  # only the unmatched tail is dropped
    assert b3.entries[-1].tokens == [8, 9] and b3.entries[-1].start_pos == 6


def test_inference_a_running_prompt_prefix_is_shared_into_another_slot() -> None:
    sched = Scheduler(max_seqs=2, token_budget=64, kv_capacity=1000)
    a = Sequence(_req("a", [1, 2, 3, 4, 5, 6], 10))
    sched.add(a)
    sched.update(sched.schedule(), StepResult(sampled={0: 9}))
    b = Sequence(_req("b", [1, 2, 3, 4, 40, 41], 10))
    sched.add(b)
    batch = sched.schedule()
    assert batch.share == [(a.slot, b.slot, 4)] and b.reused == 4
    assert batch.entries[-1].tokens == [40, 41]


def test_inference_a_short_match_shares_an_idle_prefix_and_keeps_it_whole() -> None:
    sched = Scheduler(max_seqs=2, token_budget=64, kv_capacity=1000)
    a = Sequence(_req("a", list(range(1, 11)), 3))
    sched.add(a)
    sched.update(sched.schedule(), StepResult(sampled={0: 50}))
    sched.finish(a, SequenceStatus.FINISHED_STOPPED)
    b = Sequence(_req("b", [1, 2, 3, 90, 91], 3))  # a shared system prompt, then something else
    sched.add(b)
    batch = sched.schedule()
    assert b.slot != a.slot and batch.share == [(a.slot, b.slot, 3)]
    assert sched.cache.holds(a.slot)  # still whole for a prompt that matches more of it


def test_inference_a_step_never_drops_cells_it_shares() -> None:
    """A wave of prompts matching idle slots' answer-heavy caches, one slot empty: the runner
    drops cells before it shares, so no slot may be both a share source and overwritten."""
    sched = Scheduler(max_seqs=4, token_budget=256, kv_capacity=10_000)
    prompts = [[1, 2, 3, 10 + i, 20 + i] for i in range(3)]
    first = [Sequence(_req(f"a{i}", p, 30)) for i, p in enumerate(prompts)]
    for seq in first:
        sched.add(seq)
    batch = sched.schedule()
    for _ in range(20):  # long answers: a prompt reuses little of what each slot holds
        sched.update(batch, StepResult(sampled={s.slot: 50 for s in first}))
        batch = sched.schedule()
    for seq in first:
        sched.finish(seq, SequenceStatus.FINISHED_LENGTH)
    second = [Sequence(_req(f"b{i}", p, 30)) for i, p in enumerate([*prompts, prompts[0]])]
    for seq in second:
        sched.add(seq)
    shared = 0
    for _ in range(3):
        batch = sched.schedule()
        sources = {src: n for src, _, n in batch.share}
        shared += len(batch.share)
        for slot, start in batch.evict:
            assert slot not in sources or start >= sources[slot], (batch.evict, batch.share)
        sched.update(batch, StepResult(sampled={s.slot: 60 for s in sched.running}))
    assert shared and all(s.status == SequenceStatus.RUNNING for s in second)
    assert all(s.reused == 4 for s in second)  # each found its own prompt's prefix


def test_inference_cached_cells_give_way_to_admission() -> None:
    sched = Scheduler(max_seqs=2, token_budget=64, kv_capacity=30)
    a = Sequence(_req("a", [1] * 10, 5))
    sched.add(a)
    sched.update(sched.schedule(), StepResult(sampled={0: 9}))
    sched.finish(a, SequenceStatus.FINISHED_LENGTH)
    assert sched.cache.resident_tokens == 10
    b = Sequence(_req("b", [2] * 10, 15))  # needs 25 of 30 cells: a's 10 cached cells must go
    sched.add(b)
    batch = sched.schedule()
    assert b.reused == 0 and sched.cache.resident_tokens == 0 and (a.slot, 0) in batch.evict


async def test_inference_engine_reuses_prefixes_and_counts_them() -> None:
    runner = FakeRunner(max_seqs=1)
    engine = Engine(runner, model_name="fake")
    first = await _collect(engine, _req("one", [1, 2, 3, 4], 2))
    second = await _collect(engine, _req("two", [1, 2, 3, 4], 2))
    assert [d.text for d in first] == [d.text for d in second]  # same output from a cached prefix
    assert engine.scheduler.cache.resident_tokens == 5  # 4 prompt tokens + the one answer token fed
    await engine.close()


async def test_inference_abort_frees_the_slot_for_the_next_request() -> None:
    runner = FakeRunner(max_seqs=1, step_delay_s=0.01)
    engine = Engine(runner, model_name="fake")
    stream = engine.generate(_req("long", [1, 2], 1000))
    await stream.__anext__()
    await stream.aclose()  # the client went away
    out = await asyncio.wait_for(_collect(engine, _req("next", [1, 3], 3)), 5)
    assert out[-1].finish_reason == FinishReason.LENGTH
    assert any(0 in b.close for b in runner.batches)
    await engine.close()


async def test_inference_queue_overflow_is_overloaded() -> None:
    engine = Engine(FakeRunner(max_seqs=1, step_delay_s=0.01), model_name="fake", max_waiting=1)
    a = engine.generate(_req("a", [1], 1000))
    await a.__anext__()
    b = engine.generate(_req("b", [1], 5))
    task = asyncio.create_task(b.__anext__())
    await asyncio.sleep(0.05)
    with pytest.raises(Overloaded):
        await engine.generate(_req("c", [1], 5)).__anext__()
    await a.aclose()
    await task
    await b.aclose()
    await engine.close()


async def test_inference_eos_and_stop_strings() -> None:
    engine = Engine(FakeRunner(max_seqs=2, eos_after=3), model_name="fake")
    out = await _collect(engine, _req("e", [1, 5], 50))
    assert out[-1].finish_reason == FinishReason.STOP and out[-1].usage.completion_tokens == 3
    await engine.close()
    d = Detokenizer(lambda t: {1: b"hel", 2: b"lo ST", 3: b"OP more"}[t], ["STOP"])
    assert d.add(1) == "hel" and d.add(2) == "lo " and d.add(3) == "" and d.stopped and d.text == "hello "
    utf = Detokenizer(lambda t: {1: "é".encode()[:1], 2: "é".encode()[1:]}[t], [])
    assert utf.add(1) == "" and utf.add(2) == "é"


async def test_inference_local_backend_templates_and_limits() -> None:
    runner = FakeRunner(n_ctx=64, max_seqs=2)
    backend = LocalBackend(ModelInfo("fake", "fake"), lambda: runner, grammar_from_schema=lambda s: "root ::= x")
    chat = GenerateRequest("fake", messages=[ChatMessage("user", "hi there")],
                           sampling=SamplingParams(temperature=0, max_tokens=3))
    out = [d async for d in backend.generate(chat)]
    assert out[-1].usage.completion_tokens == 3
    opened = [o for b in runner.batches for o in b.open]
    assert "<end_of_turn>" in opened[0].sampling.stop  # Gemma's turn end, from the family format
    with pytest.raises(ContextTooLong) as err:
        [d async for d in backend.generate(GenerateRequest("fake", prompt="w " * 100))]
    assert err.value.field == "prompt"
    with pytest.raises(ContextTooLong) as err:
        [d async for d in backend.generate(GenerateRequest("fake", prompt="w", sampling=SamplingParams(max_tokens=80)))]
    assert err.value.field == "sampling.max_tokens"
    await backend.close()
