"""`llm-engine serve` alone, as Ollama is run: no NATS, no Postgres, its state in files under
its home; the unmodified `ollama` and `openai` clients drive it."""

from __future__ import annotations

import math

import httpx
import ollama
import openai
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_inference_standalone_serves_ollama_and_openai_without_nats_or_postgres(standalone_engine) -> None:
    ready = httpx.get(standalone_engine.base_url + "/readyz").json()
    assert ready["ready"] and set(ready["checks"]) == {"models"}  # no nats, no postgres check
    # the bundled GGUF was joined into the engine's own store on first use, named by digest
    blobs = [p.name for p in (standalone_engine.home / "models" / "blobs").iterdir()]
    assert any(n.startswith("sha256-") and n.endswith(".gguf") for n in blobs)

    client = ollama.Client(host=standalone_engine.base_url)
    opts = {"temperature": 0, "num_predict": 6}
    chat = client.chat(model="gemma3:270m", messages=[{"role": "user", "content": "Hi"}], options=opts)
    assert chat.done and chat.message.role == "assistant" and chat.eval_count > 0
    parts = list(client.generate(model="gemma3:270m", prompt="Once upon a time", options=opts, stream=True))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    emb = client.embed(model="all-minilm:l6-v2", input=["hello", "world"])
    assert len(emb.embeddings) == 2 and len(emb.embeddings[0]) == 384

    # pulling a bundled model reports Ollama's stages with a complete layer, downloads nothing
    progress = list(client.pull("gemma3:270m", stream=True))
    assert progress[0].status == "pulling manifest" and progress[-1].status == "success"
    layer = next(p for p in progress if p.total)
    assert layer.completed == layer.total > 100_000_000 and layer.digest.startswith("sha256:")

    shown = client.show("gemma3:270m")
    assert shown.details.family == "gemma3" and "completion" in shown.capabilities
    assert any(m.model == "gemma3:270m" for m in client.ps().models)

    oa = openai.OpenAI(base_url=standalone_engine.base_url + "/v1", api_key="unused")
    done = oa.chat.completions.create(model="gemma3:270m", messages=[{"role": "user", "content": "Hi"}],
                                      max_tokens=6, temperature=0)
    assert done.choices[0].finish_reason in ("stop", "length") and done.usage.completion_tokens > 0
    chunks = list(oa.completions.create(model="gemma3:270m", prompt="Once", max_tokens=4, stream=True))
    assert chunks and chunks[-1].choices[0].finish_reason in ("stop", "length")
    vecs = oa.embeddings.create(model="all-minilm:l6-v2", input=["a"])
    assert len(vecs.data[0].embedding) == 384
    assert "gemma3:270m" in {m.id for m in oa.models.list()}


def test_inference_images_to_a_text_model_are_refused_naming_the_field(standalone_engine) -> None:
    client = ollama.Client(host=standalone_engine.base_url)
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="
    with pytest.raises(ollama.ResponseError) as chat:
        client.chat(model="gemma3:270m", messages=[{"role": "user", "content": "What is this?", "images": [png]}])
    assert chat.value.status_code == 400 and "cannot read images" in chat.value.error
    raw = httpx.post(standalone_engine.base_url + "/api/generate",
                     json={"model": "gemma3:270m", "prompt": "What is this?", "images": [png], "stream": False})
    assert raw.status_code == 400 and raw.json()["field"] == "images"
    oa = openai.OpenAI(base_url=standalone_engine.base_url + "/v1", api_key="unused")
    with pytest.raises(openai.BadRequestError) as vision:
        oa.chat.completions.create(model="gemma3:270m", messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]}])
    assert vision.value.body["param"] == "messages.0.content.1.image_url"


def test_inference_logprobs_on_both_apis(standalone_engine) -> None:
    client = ollama.Client(host=standalone_engine.base_url)
    out = client.generate(model="gemma3:270m", prompt="The capital of France is", logprobs=True, top_logprobs=3,
                          options={"temperature": 0, "num_predict": 4})
    assert len(out.logprobs) == out.eval_count > 0
    for step in out.logprobs:
        tops = [t.logprob for t in step.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True) and step.logprob <= tops[0] <= 0
        assert sum(math.exp(t) for t in tops) <= 1.0 + 1e-6  # a distribution's share, not raw logits
    plain = client.generate(model="gemma3:270m", prompt="Hi", options={"num_predict": 2})
    assert not plain.logprobs  # only when asked

    oa = openai.OpenAI(base_url=standalone_engine.base_url + "/v1", api_key="unused")
    chat = oa.chat.completions.create(model="gemma3:270m", messages=[{"role": "user", "content": "Hi"}],
                                      max_tokens=4, temperature=0, logprobs=True, top_logprobs=2)
    content = chat.choices[0].logprobs.content
    assert len(content) == chat.usage.completion_tokens and all(len(t.top_logprobs) == 2 for t in content)
    streamed = list(oa.chat.completions.create(model="gemma3:270m", messages=[{"role": "user", "content": "Hi"}],
                                               max_tokens=4, temperature=0, logprobs=True, stream=True))
    tokens = [t for c in streamed if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert 0 < len(tokens) <= 4
    done = oa.completions.create(model="gemma3:270m", prompt="The sky is", max_tokens=3, temperature=0, logprobs=2)
    lp = done.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == done.usage.completion_tokens
    assert lp.text_offset == sorted(lp.text_offset) and all(len(t) == 2 for t in lp.top_logprobs)
    with pytest.raises(openai.BadRequestError) as bad:
        oa.chat.completions.create(model="gemma3:270m", messages=[{"role": "user", "content": "Hi"}],
                                   logprobs=True, top_logprobs=50)
    assert bad.value.body["param"] == "top_logprobs"


def test_inference_openai_n_choices_are_separate_sequences(standalone_engine) -> None:
    oa = openai.OpenAI(base_url=standalone_engine.base_url + "/v1", api_key="unused")
    three = oa.chat.completions.create(model="gemma3:270m", messages=[{"role": "user", "content": "Hi"}],
                                       max_tokens=5, n=3, seed=7, temperature=1.0)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert all(c.finish_reason in ("stop", "length") for c in three.choices)
    # the prompt counted once, every choice's tokens counted
    assert three.usage.prompt_tokens > 0 and 3 <= three.usage.completion_tokens <= 15
    chunks = list(oa.chat.completions.create(model="gemma3:270m", messages=[{"role": "user", "content": "Hi"}],
                                             max_tokens=5, n=2, stream=True, stream_options={"include_usage": True}))
    finished = {ch.index for c in chunks for ch in c.choices if ch.finish_reason}
    assert finished == {0, 1} and chunks[-1].usage.completion_tokens >= 2
    legacy = oa.completions.create(model="gemma3:270m", prompt="Once upon", max_tokens=3, n=2)
    assert [c.index for c in legacy.choices] == [0, 1]
    with pytest.raises(openai.BadRequestError) as err:
        oa.chat.completions.create(model="gemma3:270m", messages=[{"role": "user", "content": "Hi"}], n=9)
    assert err.value.body["param"] == "n"


def test_inference_embed_with_a_chat_model_as_ollama_does(standalone_engine) -> None:
    client = ollama.Client(host=standalone_engine.base_url)
    out = client.embed(model="gemma3:270m", input=["The cat sat on the mat.", "Stock markets fell today."])
    a, b = out.embeddings
    assert len(a) == len(b) == 640  # Gemma 3 270M's hidden size: mean-pooled hidden states
    assert abs(sum(x * x for x in a) - 1.0) < 1e-3 and a != b  # normalized, one per input
    oa = openai.OpenAI(base_url=standalone_engine.base_url + "/v1", api_key="unused")
    assert len(oa.embeddings.create(model="gemma3:270m", input=["x"]).data[0].embedding) == 640
    chat = client.chat(model="gemma3:270m", messages=[{"role": "user", "content": "Hi"}],
                       options={"num_predict": 2})
    assert chat.done  # the chat model still serves chats beside its embedding context
