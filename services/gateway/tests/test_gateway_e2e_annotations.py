"""End to end on the real stack (every service a process, the bundled models, real NATS and
Postgres): an annotated question is answered from its annotation, streamed in Dify's message
events, with no Generate call on the inference service (its request counter does not move),
and the message records the annotation; a question below the threshold goes to the model."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from gateway_stack import app_with_key

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

EMBEDDING_MODEL = "all-minilm:l6-v2"
ANSWER = "Use the Forgot password link on the sign-in page."


def generate_calls(stack) -> float:
    """Finished Generate requests of every chat model, from the inference service's /metrics."""
    inference = next(p for p in stack.procs if p.name == "inference")
    text = httpx.get(f"{inference.base_url}/metrics", verify=inference.verify, timeout=10).text
    pattern = r'^loom_inference_e2e_request_latency_seconds_count\{model_name="([^"]+)"\} ([0-9.e+]+)$'
    return sum(float(n) for model, n in re.findall(pattern, text, re.M) if model != EMBEDDING_MODEL)


def chat(url: str, h: dict, query: str) -> list[dict]:
    with httpx.stream("POST", f"{url}/chat-messages", json={"query": query, "user": "u1", "inputs": {},
                                                            "response_mode": "streaming"},
                      headers=h, timeout=180) as s:
        assert s.status_code == 200, s.read()
        return [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: ")]


def test_an_annotated_question_is_answered_without_a_generate_call(stack) -> None:
    app_id, key = app_with_key(stack, "chat", name="annotated", max_tokens=4)
    h = {"Authorization": f"Bearer {key}"}
    url = f"{stack.gateway_url}/v1"
    ann = httpx.post(f"{url}/apps/annotations", json={"question": "How do I reset my password?", "answer": ANSWER},
                     headers=h, timeout=30).json()
    job = httpx.post(f"{url}/apps/annotation-reply/enable", json={
        "score_threshold": 0.9, "embedding_provider_name": "loom", "embedding_model_name": EMBEDDING_MODEL},
        headers=h, timeout=60)
    assert job.status_code == 200 and job.json()["job_status"] == "completed", job.text

    before = generate_calls(stack)
    events = chat(url, h, "how do I reset my password?")
    assert [e["event"] for e in events] == ["message", "message_end"], events
    assert events[0]["answer"] == ANSWER
    assert events[-1]["metadata"]["annotation_reply"]["id"] == ann["id"]
    assert generate_calls(stack) == before  # no model was called
    message_id = events[-1]["message_id"]

    # The message records it: its answer and the annotation's hit (count and history).
    conv = events[-1]["conversation_id"]
    msgs = httpx.get(f"{url}/messages", params={"conversation_id": conv, "user": "u1"}, headers=h).json()["data"]
    assert msgs[-1]["id"] == message_id and msgs[-1]["answer"] == ANSWER
    assert httpx.get(f"{url}/apps/annotations", headers=h).json()["data"][0]["hit_count"] == 1
    hits = httpx.get(stack.ws(f"/apps/{app_id}/annotations/{ann['id']}/hit-histories"), headers=stack.console).json()
    assert [x["message_id"] for x in hits["data"]] == [message_id] and hits["data"][0]["score"] >= 0.9

    # Below the threshold: the model answers.
    events = chat(url, h, "Which rivers flow through Vienna?")
    end = next(e for e in events if e["event"] == "message_end")
    assert "annotation_reply" not in end["metadata"]
    assert generate_calls(stack) == before + 1
