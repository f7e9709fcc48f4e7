"""Defects a real Dify client hit (issue 18, point 8), on the real stack (inference with the
bundled model, orchestrator, gateway as processes, real NATS and Postgres), driven by Dify's
own Python client and plain HTTP as in test_gateway_e2e.py:

- a streamed chat's `message` / `message_end` carried the run's id as `message_id`, so feedback
  and suggestions on it answered 404: now one id, the stored message's, everywhere (the model
  side of suggestions is test_gateway_e2e.py's);
- `node_started` had no `inputs` (Dify's API reference lists them)."""

from __future__ import annotations

import functools
import json

import httpx
import pytest
import requests
from dify_client import ChatClient
from gateway_stack import app_with_key

# The first test pays for starting the stack; the suggestions call runs the real model on a busy box.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(480)]

MAX_TOKENS = 16  # structure, not prose


@pytest.fixture(autouse=True)
def _bounded_requests(monkeypatch):
    monkeypatch.setattr(requests, "request", functools.partial(requests.request, timeout=(10, 120)))


def _data(lines) -> list[dict]:
    return [json.loads(line[6:]) for line in lines if line.startswith("data: ")]


def test_streamed_chat_message_id_is_the_stored_one_for_feedback_and_suggestions(stack) -> None:
    _, key = app_with_key(stack, "chat", name="one id", max_tokens=MAX_TOKENS)
    client = ChatClient(key)
    client.base_url = f"{stack.gateway_url}/v1"
    r = client.create_chat_message(inputs={}, query="Name a colour.", user="ida", response_mode="streaming")
    assert r.status_code == 200, r.text
    events = _data(line.decode() for line in r.iter_lines() if line)
    assert events[-1]["event"] == "message_end"
    ids = {e["message_id"] for e in events if e["event"] in ("message", "message_end")}
    ids |= {e["id"] for e in events if e["event"] in ("message", "message_end")}
    assert len(ids) == 1, events
    (message_id,) = ids
    assert message_id != events[0]["task_id"]   # the run's id is the task's, not the message's

    stored = client.get_conversation_messages(user="ida", conversation_id=events[-1]["conversation_id"]).json()
    assert [m["id"] for m in stored["data"]] == [message_id]
    assert client.message_feedback(message_id, "like", "ida").json() == {"result": "success"}
    # Suggestions look the message up first (404 when it is not one): this app has them off, so a
    # found message answers Dify's 400 "disabled" without a model call; the run's id is no message.
    h = {"Authorization": f"Bearer {key}"}
    suggested = httpx.get(f"{stack.gateway_url}/v1/messages/{message_id}/suggested", params={"user": "ida"},
                          headers=h, timeout=60)
    assert (suggested.status_code, suggested.json()["message"]) == (400, "Suggested Questions Is Disabled.")
    by_run = httpx.get(f"{stack.gateway_url}/v1/messages/{events[0]['task_id']}/suggested", params={"user": "ida"},
                       headers=h, timeout=60)
    assert by_run.status_code == 404


GREETER = {
    "nodes": [
        {"id": "start", "data": {"type": "start", "variables": [{"variable": "city", "type": "text-input"}]}},
        {"id": "t", "data": {"type": "template-transform", "template": "Hello {{ city }}!",
                             "variables": [{"variable": "city", "value_selector": ["start", "city"]}]}},
        {"id": "end", "data": {"type": "end",
                               "outputs": [{"variable": "greeting", "value_selector": ["t", "output"]}]}},
    ],
    "edges": [{"source": "start", "target": "t"}, {"source": "t", "target": "end"}],
}


def test_node_started_carries_inputs(stack) -> None:
    _, key = app_with_key(stack, "workflow", GREETER, name="inputs shown")
    with httpx.stream("POST", f"{stack.gateway_url}/v1/workflows/run", headers={"Authorization": f"Bearer {key}"},
                      json={"inputs": {"city": "Oslo"}, "user": "u", "response_mode": "streaming"}, timeout=60) as s:
        events = _data(s.iter_lines())
    started = {e["data"]["node_id"]: e["data"] for e in events if e["event"] == "node_started"}
    assert set(started) == {"start", "t", "end"}
    assert all(isinstance(d["inputs"], dict) for d in started.values())
    assert started["t"]["inputs"] == {"start.city": "Oslo"}
    assert started["end"]["inputs"] == {"t.output": "Hello Oslo!"}   # as it stands when the node starts
