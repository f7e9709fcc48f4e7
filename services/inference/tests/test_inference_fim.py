"""`suffix` (fill-in-the-middle): a model whose vocabulary has FIM tokens gets
BOS <fim_pre> prefix <fim_suf> suffix <fim_mid> (a scripted runner shows the prompt it was
given); a model without them (the bundled Gemma, for real) answers a 400 naming `suffix`."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from loom_inference.backends.fake import FakeRunner
from loom_inference.backends.local import LocalBackend
from loom_inference.engine.types import GenerateRequest, InvalidRequest, ModelInfo, SamplingParams

PRE, SUF, MID = 90, 91, 92


class FimRunner(FakeRunner):
    def fim_tokens(self) -> tuple[int, int, int]:
        return PRE, SUF, MID


def test_inference_suffix_builds_the_fill_in_the_middle_prompt() -> None:
    async def main():
        runner = FimRunner(n_ctx=64, max_seqs=1)
        backend = LocalBackend(ModelInfo("coder", "fake"), lambda: runner, grammar_from_schema=lambda s: "")
        req = GenerateRequest("coder", prompt="def add(a, b):", suffix="return c",
                              sampling=SamplingParams(temperature=0, max_tokens=2))
        out = [d async for d in backend.generate(req)]
        assert out[-1].usage.completion_tokens == 2
        prompt = [t for b in runner.batches for e in b.entries if e.start_pos == 0 for t in e.tokens]
        prefix, suffix = runner.tokenize("def add(a, b):", add_bos=False), runner.tokenize("return c", add_bos=False)
        assert prompt == [1, PRE, *prefix, SUF, *suffix, MID]
        await backend.close()

        plain = LocalBackend(ModelInfo("chatty", "fake"), lambda: FakeRunner(n_ctx=64, max_seqs=1),
                             grammar_from_schema=lambda s: "")
        with pytest.raises(InvalidRequest) as err:
            [d async for d in plain.generate(GenerateRequest("chatty", prompt="x", suffix="y"))]
        assert err.value.field == "suffix"
        await plain.close()
    asyncio.run(main())


@pytest.mark.integration
@pytest.mark.slow
def test_inference_suffix_to_a_model_without_fim_is_a_400(standalone_engine) -> None:
    refused = httpx.post(standalone_engine.base_url + "/api/generate",
                         json={"model": "gemma3:270m", "prompt": "def f():", "suffix": "return x", "stream": False})
    assert refused.status_code == 400 and refused.json()["field"] == "suffix"
    oa = openai.OpenAI(base_url=standalone_engine.base_url + "/v1", api_key="unused")
    with pytest.raises(openai.BadRequestError) as err:
        oa.completions.create(model="gemma3:270m", prompt="def f():", suffix="return x", max_tokens=4)
    assert err.value.body["param"] == "suffix"
