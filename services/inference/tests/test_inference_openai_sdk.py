"""The `openai` SDK, unchanged, against the real service and model: chat (plain and
streaming), a grammar-constrained tool call whose arguments parse and match the schema,
response_format json_schema, completions, embeddings and models."""

from __future__ import annotations

import json

import openai
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                                    "unit": {"type": "string", "enum": ["c", "f"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}


@pytest.fixture
def client(inference_service) -> openai.OpenAI:
    return openai.OpenAI(base_url=inference_service.base_url + "/v1", api_key="unused")


def test_inference_openai_chat_stream_and_usage(client) -> None:
    plain = client.chat.completions.create(model="gemma3:270m", messages=[{"role": "user", "content": "Hi"}],
                                           max_tokens=8, temperature=0)
    assert plain.choices[0].message.role == "assistant"
    assert plain.choices[0].finish_reason in ("stop", "length") and plain.usage.completion_tokens > 0

    chunks = list(client.chat.completions.create(
        model="gemma3:270m", messages=[{"role": "user", "content": "Count"}], max_tokens=10, temperature=0,
        stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text and finishes in (["length"], ["stop"]) and chunks[-1].usage.completion_tokens > 0
    assert text == plain.choices[0].message.content or len(chunks) > 3


def test_inference_openai_tool_calls_parse_under_grammar(client) -> None:
    for i in range(3):
        out = client.chat.completions.create(
            model="gemma3:270m", messages=[{"role": "user", "content": f"Weather in city number {i}?"}],
            tools=[WEATHER], tool_choice="required", max_tokens=60, temperature=0.7, seed=i)
        choice = out.choices[0]
        assert choice.finish_reason == "tool_calls", choice
        call = choice.message.tool_calls[0]
        args = json.loads(call.function.arguments)
        assert call.function.name == "get_weather" and call.id.startswith("call_")
        assert set(args) == {"city", "unit"} and args["unit"] in ("c", "f") and isinstance(args["city"], str)

    stream = list(client.chat.completions.create(
        model="gemma3:270m", messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, max_tokens=60, temperature=0,
        stream=True))
    calls = [tc for c in stream if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls and json.loads(calls[0].function.arguments)["unit"] in ("c", "f")
    assert stream[-1].choices[0].finish_reason == "tool_calls"
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == ""  # no JSON as text

    # `auto`: a call, or an answer given as plain text (the {"content": ...} envelope taken off).
    for i in range(3):
        m = client.chat.completions.create(
            model="gemma3:270m", messages=[{"role": "user", "content": "Say hello to me."}], tools=[WEATHER],
            tool_choice="auto", max_tokens=40, temperature=0.9, seed=10 + i).choices[0].message
        assert m.tool_calls or '"content"' not in (m.content or ""), m

    fmt = client.chat.completions.create(
        model="gemma3:270m", messages=[{"role": "user", "content": "A person"}], max_tokens=60, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": {
            "type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}}})
    assert isinstance(json.loads(fmt.choices[0].message.content)["age"], int)


def test_inference_openai_completions_embeddings_models(client) -> None:
    comp = client.completions.create(model="gemma3:270m", prompt="The sky is", max_tokens=5, temperature=0)
    assert comp.choices[0].text and comp.usage.completion_tokens == 5
    emb = client.embeddings.create(model="all-minilm:l6-v2", input=["one", "two", "three"])
    assert [len(d.embedding) for d in emb.data] == [384] * 3
    assert {"gemma3:270m", "all-minilm:l6-v2"} <= {m.id for m in client.models.list().data}
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gemma3:270m", messages=[{"role": "user", "content": "x " * 9000}],
                                       max_tokens=4)
    assert "messages" in str(err.value)
