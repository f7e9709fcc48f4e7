"""An app behind the OpenAI-compatible API, the gateway's side: the `openai` SDK, with an app
key and `model` set to the app's id, chats with the app (chat, chatflow, agent), blocking and
streaming, over a real socket; the run is the app's (recorded with its conversation, continued
by `conversation_id`); tools and non-chat apps are refused naming the field. The scripted
stand-in plays the orchestrator; test_gateway_e2e_openai_app.py runs the real stack."""

from __future__ import annotations

import openai
import pytest
from gateway_testkit import make_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def client(gateway, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0, timeout=60)


@pytest.mark.parametrize("mode", ["chat", "chatflow", "agent"])
async def test_the_openai_sdk_chats_with_an_app(gateway, admin, orchestrator, mode) -> None:
    app_id, key = await make_app(gateway.client, admin, mode)
    ai = client(gateway, key)
    r = await ai.chat.completions.create(model=app_id, messages=[{"role": "system", "content": "ignored"},
                                                                 {"role": "user", "content": "Hello app"}],
                                         user="alice")
    assert r.model == app_id and r.object == "chat.completion"
    assert r.choices[0].message.content == "tok0 tok1 tok2 " and r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens == 7 and r.usage.prompt_tokens == 3
    req = orchestrator.requests[-1]
    assert req.app_id == app_id and req.query == "Hello app" and req.user == "alice"
    conversation = r.model_extra["conversation_id"]
    assert conversation and req.conversation_id == conversation

    stream = await ai.chat.completions.create(model=app_id, messages=[{"role": "user", "content": "More"}],
                                              stream=True, user="alice",
                                              extra_body={"conversation_id": conversation})
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok0 tok1 tok2 "
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.total_tokens == 7 and all(c.id == chunks[0].id for c in chunks)
    assert orchestrator.requests[-1].conversation_id == conversation  # the same conversation, continued
    # Both turns are the app's messages, as the service API records them.
    r = await gateway.client.get("/v1/messages", params={"user": "alice", "conversation_id": conversation},
                                 headers={"Authorization": f"Bearer {key}"})
    assert [m["query"] for m in r.json()["data"]] == ["Hello app", "More"]
    assert all(m["answer"] == "tok0 tok1 tok2 " for m in r.json()["data"])


async def test_app_model_refusals_name_the_field(gateway, admin, orchestrator) -> None:
    app_id, key = await make_app(gateway.client, admin, "chat")
    ai = client(gateway, key)
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as bad:
        await ai.chat.completions.create(model=app_id, messages=[{"role": "user", "content": "x"}], tools=[tool])
    assert bad.value.body["field"] == "tools"
    with pytest.raises(openai.BadRequestError) as bad:
        await ai.chat.completions.create(model=app_id, messages=[{"role": "assistant", "content": "x"}])
    assert bad.value.body["field"] == "messages"
    wf_id, wf_key = await make_app(gateway.client, admin, "workflow", name="wf")
    with pytest.raises(openai.BadRequestError) as bad:
        await client(gateway, wf_key).chat.completions.create(model=wf_id, messages=[{"role": "user", "content": "x"}])
    assert bad.value.body["code"] == "not_chat_app"
    # Another app's id is not this key's app: it is read as a model name (no model server here).
    with pytest.raises(openai.APIStatusError) as other:
        await ai.chat.completions.create(model=wf_id, messages=[{"role": "user", "content": "x"}])
    assert other.value.status_code >= 500 and all(r.app_id != wf_id for r in orchestrator.requests)
