"""End to end with the real stack (inference + bundled model, rag, tools, orchestrator, gateway as
processes): the `openai` SDK chats with a chat app (model = the app's id), blocking and
streaming; a signed webhook runs a workflow app and an unsigned one gets 401; POST
/v1/workflows/{workflow_id}/run runs the version it names; GET /v1/end-users/{id}.

The bundled model is a base model: tests assert structure, never the content of its text."""

from __future__ import annotations

import json
import time

import openai
import pytest
from gateway_stack import app_with_key

from loom_gateway.store import webhooks

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def greeting_flow(template: str) -> dict:
    return {"nodes": [{"id": "start", "data": {"type": "start", "variables": [
                          {"variable": "city", "label": "City", "type": "text-input", "required": True}]}},
                      {"id": "t", "data": {"type": "template-transform", "template": template,
                                           "variables": [{"variable": "city", "value_selector": ["start", "city"]}]}},
                      {"id": "end", "data": {"type": "end", "outputs": [{"variable": "greeting",
                                                                         "value_selector": ["t", "output"]}]}}],
            "edges": [{"source": "start", "target": "t"}, {"source": "t", "target": "end"}]}


def test_the_openai_sdk_chats_with_a_chat_app(stack) -> None:
    app_id, key = app_with_key(stack, "chat", max_tokens=16)
    ai = openai.OpenAI(base_url=f"{stack.gateway_url}/v1", api_key=key, max_retries=0, timeout=180)
    listed = [m.id for m in ai.models.list().data]
    assert listed[0] == app_id  # the app first, then the models
    r = ai.chat.completions.create(model=app_id, messages=[{"role": "user", "content": "Say hello."}], user="bob")
    assert r.model == app_id and r.choices[0].finish_reason == "stop"
    assert isinstance(r.choices[0].message.content, str) and r.usage.completion_tokens > 0
    conversation = r.model_extra["conversation_id"]
    chunks = list(ai.chat.completions.create(model=app_id, messages=[{"role": "user", "content": "Again."}],
                                             stream=True, user="bob", extra_body={"conversation_id": conversation}))
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason == "stop"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 1
    assert chunks[-1].usage.completion_tokens > 0
    with stack.http() as http:  # both turns are the app's conversation
        msgs = http.get(f"{stack.gateway_url}/v1/messages", params={"user": "bob", "conversation_id": conversation},
                        headers={"Authorization": f"Bearer {key}"}).json()["data"]
    assert [m["query"] for m in msgs] == ["Say hello.", "Again."]


def test_a_signed_webhook_runs_the_workflow_and_an_unsigned_one_gets_401(stack) -> None:
    app_id, _ = app_with_key(stack, "workflow", dsl=greeting_flow("Hi {{ city }}"), name="hooked")
    with stack.http() as http:
        hook = http.post(stack.ws(f"/apps/{app_id}/triggers/webhook"), headers=stack.console).json()
        url = f"{stack.gateway_url}{hook['path']}"
        body = json.dumps({"city": "Porto"}).encode()
        r = http.post(url, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 401
        stamp = str(int(time.time()))
        signed = {"X-Loom-Timestamp": stamp, "X-Loom-Signature": webhooks.signature(hook["secret"], stamp, body)}
        r = http.post(url + "?response_mode=blocking", content=body, headers=signed, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["outputs"] == {"greeting": "Hi Porto"}
        run = http.get(stack.ws(f"/apps/{app_id}/runs"), params={"invoke_from": "webhook"},
                       headers=stack.console).json()["data"]
        assert [x["id"] for x in run] == [r.json()["workflow_run_id"]] and run[0]["status"] == "succeeded"


def test_workflow_version_run_and_end_user(stack) -> None:
    app_id, key = app_with_key(stack, "workflow", dsl=greeting_flow("v1 {{ city }}"), name="versions")
    h = {"Authorization": f"Bearer {key}"}
    with stack.http() as http:
        draft = http.get(stack.ws(f"/apps/{app_id}/draft"), headers=stack.console).json()["dsl"]
        draft["workflow"]["graph"] = greeting_flow("v2 {{ city }}")
        http.put(stack.ws(f"/apps/{app_id}/draft"), json={"dsl": draft}, headers=stack.console).raise_for_status()
        http.post(stack.ws(f"/apps/{app_id}/publish"), headers=stack.console).raise_for_status()
        body = {"inputs": {"city": "Riga"}, "user": "carol", "response_mode": "blocking"}
        outs = {v: http.post(f"{stack.gateway_url}/v1/workflows/{v}/run", json=body, headers=h, timeout=120).json()
                for v in ("1", "2")}
        assert outs["1"]["data"]["outputs"] == {"greeting": "v1 Riga"}, outs
        assert outs["2"]["data"]["outputs"] == {"greeting": "v2 Riga"}
        current = http.post(f"{stack.gateway_url}/v1/workflows/run", json=body, headers=h, timeout=120).json()
        assert current["data"]["outputs"] == {"greeting": "v2 Riga"}
        up = http.post(f"{stack.gateway_url}/v1/files/upload", files={"file": ("a.txt", b"hi", "text/plain")},
                       data={"user": "carol"}, headers=h).json()
        user = http.get(f"{stack.gateway_url}/v1/end-users/{up['created_by']}", headers=h).json()
        assert user["id"] == up["created_by"] and user["session_id"] == "carol" and user["app_id"] == app_id
