"""A reasoning model's thinking comes apart from its answer: Ollama's `thinking`
(message.thinking), OpenAI's `reasoning_content`, never the tags in the answer; `think: false`
drops it, `think: true` to a model that does not think is a 400. A scripted runner writes
`<think>` and `</think>` split across tokens; the unmodified clients read it through the
service's real HTTP app (in process)."""

from __future__ import annotations

import asyncio

import httpx
import ollama
import openai
import pytest
from fastapi import FastAPI

from loom_inference.api.http import mount
from loom_inference.backends.fake import FakeRunner
from loom_inference.backends.local import LocalBackend
from loom_inference.engine.scheduler import Batch, StepResult
from loom_inference.engine.types import ModelInfo
from loom_inference.models import ModelManager
from loom_inference.prompting.thinking import ThinkingSplitter
from loom_inference.router.router import Router
from loom_inference.settings import InferenceSettings

SCRIPT = ["<th", "ink>", "Two and ", "two", " make four.</thi", "nk>", "\n\n", "The answer", " is 4."]


class ReasoningRunner(FakeRunner):
    """Answers every prompt with SCRIPT (token i+1 is SCRIPT[i]), then end-of-generation."""

    def token_bytes(self, token: int) -> bytes:
        return SCRIPT[token - 1].encode() if 0 < token <= len(SCRIPT) else b""

    def metadata(self) -> dict[str, str]:
        return {"general.architecture": "qwen3"}

    def execute(self, batch: Batch) -> StepResult:
        out = super().execute(batch)
        for slot in out.sampled:
            n = self._count[slot]
            out.sampled[slot] = n if n <= len(SCRIPT) else 0
        return out


def test_inference_thinking_splitter_holds_back_split_tags() -> None:
    s = ThinkingSplitter()
    parts = [s.feed(t) for t in SCRIPT]
    thinking = "".join(p[0] for p in parts) + s.flush()[0]
    answer = "".join(p[1] for p in parts)
    assert thinking == "Two and two make four." and answer == "The answer is 4."
    plain = ThinkingSplitter()
    assert plain.feed("<th") == ("", "") and plain.feed("e end>") == ("", "<the end>")  # held, then not a tag


def _app(tmp_path) -> FastAPI:
    router = Router()
    for name, runner in (("thinker", ReasoningRunner), ("plain", FakeRunner)):
        router.add(LocalBackend(ModelInfo(name, "llamacpp"), lambda r=runner: r(n_ctx=256, max_seqs=2, eos_after=4),
                                grammar_from_schema=lambda s: s))
    settings = InferenceSettings(models_dir=tmp_path / "models")
    app = FastAPI()
    mount(app, router, ModelManager(router, settings), settings)
    return app


def test_inference_thinking_apart_on_both_apis(tmp_path) -> None:
    app = _app(tmp_path)

    async def main():
        transport = httpx.ASGITransport(app=app)
        client = ollama.AsyncClient(host="http://127.0.0.1", transport=transport)
        chat = await client.chat(model="thinker", messages=[{"role": "user", "content": "2+2?"}], think=True)
        assert chat.message.thinking == "Two and two make four." and chat.message.content == "The answer is 4."
        parts = [p async for p in await client.generate(model="thinker", prompt="2+2?", stream=True)]
        assert "".join(p.thinking or "" for p in parts) == "Two and two make four."
        assert "".join(p.response for p in parts) == "The answer is 4."
        quiet = await client.chat(model="thinker", messages=[{"role": "user", "content": "2+2?"}], think=False)
        assert not quiet.message.thinking and quiet.message.content == "The answer is 4."
        with pytest.raises(ollama.ResponseError) as refused:
            await client.chat(model="plain", messages=[{"role": "user", "content": "hi"}], think=True)
        assert refused.value.status_code == 400 and "thinking" in refused.value.error

        oa = openai.AsyncOpenAI(base_url="http://127.0.0.1/v1", api_key="unused",
                                http_client=httpx.AsyncClient(transport=transport))
        done = await oa.chat.completions.create(model="thinker", messages=[{"role": "user", "content": "2+2?"}])
        msg = done.choices[0].message
        assert msg.content == "The answer is 4." and msg.model_extra["reasoning_content"] == "Two and two make four."
        chunks = [c async for c in await oa.chat.completions.create(
            model="thinker", messages=[{"role": "user", "content": "2+2?"}], stream=True)]
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        assert "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas) == "Two and two make four."
        assert "".join(d.content or "" for d in deltas) == "The answer is 4."
    asyncio.run(main())
