"""End to end with the real stack (inference + bundled model, rag, tools, orchestrator,
gateway as processes, real NATS and Postgres): Dify's own Python client drives a chat app and
a completion app unchanged; workflow runs, stop and the knowledge API over HTTP in Dify's
documented shapes; the openai SDK streams a chat completion and makes a tool call.

The bundled model is a base model: tests assert structure, never the content of its text."""

from __future__ import annotations

import functools
import json
import time

import httpx
import pytest
import requests
from dify_client import ChatClient, CompletionClient
from gateway_stack import app_with_key

# A hang becomes a failure with a traceback (pytest-timeout), never a stuck suite.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

MAX_TOKENS = 24  # structure, not prose: short answers keep these tests quick on a loaded box


@pytest.fixture(autouse=True)
def _bounded_requests(monkeypatch):
    """dify-client calls `requests.request` with no timeout: a stalled socket would wait forever."""
    monkeypatch.setattr(requests, "request", functools.partial(requests.request, timeout=(10, 120)))

TEMPLATE_FLOW = {
    "nodes": [
        {"id": "start", "data": {"type": "start", "variables": [{"variable": "city", "type": "text-input"}]}},
        {"id": "t", "data": {"type": "template-transform", "template": "Hello {{ city }}!",
                             "variables": [{"variable": "city", "value_selector": ["start", "city"]}]}},
        {"id": "ans", "data": {"type": "answer", "answer": "{{#t.output#}}"}},
        {"id": "end", "data": {"type": "end",
                               "outputs": [{"variable": "greeting", "value_selector": ["t", "output"]}]}},
    ],
    "edges": [{"source": "start", "target": "t"}, {"source": "t", "target": "ans"}, {"source": "ans", "target": "end"}],
}


def data_events(lines) -> list[dict]:
    return [json.loads(line[6:]) for line in lines if line.startswith("data: ")]


def test_dify_client_chat_blocking_streaming_conversations_feedback(stack) -> None:
    _, key = app_with_key(stack, "chat", max_tokens=MAX_TOKENS)
    client = ChatClient(key)
    client.base_url = f"{stack.gateway_url}/v1"

    r = client.create_chat_message(inputs={}, query="Hello, who are you?", user="alice", response_mode="blocking")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["event"] == "message" and isinstance(body["answer"], str)
    assert {"task_id", "message_id", "conversation_id", "metadata", "created_at"} <= set(body)
    assert body["metadata"]["usage"]["total_tokens"] > 0
    conv = body["conversation_id"]

    r = client.create_chat_message(inputs={}, query="And then?", user="alice", response_mode="streaming",
                                   conversation_id=conv)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = data_events(line.decode() for line in r.iter_lines() if line)
    names = [e["event"] for e in events]
    assert set(names) == {"message", "message_end"} and names[-1] == "message_end"  # Dify's basic chat stream
    assert "message" in names and all(e.get("conversation_id") == conv for e in events if e["event"] == "message")

    convs = client.get_conversations(user="alice").json()
    assert [c["id"] for c in convs["data"]] == [conv] and "has_more" in convs
    msgs = client.get_conversation_messages(user="alice", conversation_id=conv).json()
    assert [m["query"] for m in msgs["data"]] == ["Hello, who are you?", "And then?"]
    assert msgs["data"][0]["answer"] == body["answer"]
    assert client.message_feedback(msgs["data"][1]["id"], "like", "alice").json() == {"result": "success"}
    rated = client.get_conversation_messages(user="alice", conversation_id=conv).json()["data"][1]
    assert rated["feedback"] == {"rating": "like"}
    assert client.rename_conversation(conv, "Greetings", "alice").json()["name"] == "Greetings"
    # auto_generate (plain HTTP: dify-client 0.1.x cannot send it): the real model names it under a schema.
    auto = httpx.post(f"{stack.gateway_url}/v1/conversations/{conv}/name", json={"auto_generate": True,
                      "user": "alice"}, headers={"Authorization": f"Bearer {key}"}, timeout=120)
    assert auto.status_code == 200 and 0 < len(auto.json()["name"]) <= 40, auto.text
    params = client.get_application_parameters("alice").json()
    assert "user_input_form" in params and "system_parameters" in params
    up = client.file_upload("alice", {"file": ("note.txt", b"hello file", "text/plain")})
    assert up.status_code == 201 and up.json()["extension"] == "txt"
    # Deleting the conversation (plain HTTP: dify-client 0.1.x has no delete method).
    d = httpx.request("DELETE", f"{stack.gateway_url}/v1/conversations/{conv}", json={"user": "alice"},
                      headers={"Authorization": f"Bearer {key}"})
    assert d.json() == {"result": "success"}
    assert client.get_conversations(user="alice").json()["data"] == []


def test_dify_client_completion(stack) -> None:
    _, key = app_with_key(stack, "completion", max_tokens=MAX_TOKENS)
    client = CompletionClient(key)
    client.base_url = f"{stack.gateway_url}/v1"
    r = client.create_completion_message(inputs={"query": "Write a haiku"}, response_mode="blocking", user="bob")
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "completion" and isinstance(r.json()["answer"], str)
    r = client.create_completion_message(inputs={"query": "Once upon"}, response_mode="streaming", user="bob")
    names = [e["event"] for e in data_events(line.decode() for line in r.iter_lines() if line)]
    assert set(names) <= {"message", "message_end", "error"} and names[-1] == "message_end"


def test_suggested_questions_after_an_answer_always_parse(stack) -> None:
    """Dify's GET /v1/messages/{id}/suggested: the real model's reply is held to a JSON schema."""
    _, key = app_with_key(stack, "chat", name="suggesting", max_tokens=MAX_TOKENS,
                          features={"suggested_questions_after_answer": {"enabled": True}})
    h = {"Authorization": f"Bearer {key}"}
    url = f"{stack.gateway_url}/v1"
    assert httpx.get(f"{url}/parameters", params={"user": "s"}, headers=h).json()[
        "suggested_questions_after_answer"] == {"enabled": True}
    answer = httpx.post(f"{url}/chat-messages", json={"inputs": {}, "query": "What is the capital of France?",
                                                      "user": "s", "response_mode": "blocking"},
                        headers=h, timeout=120).json()
    r = httpx.get(f"{url}/messages/{answer['message_id']}/suggested", params={"user": "s"}, headers=h,
                  timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    # The grammar gives three strings, always complete; one that is only blanks is dropped.
    assert body["result"] == "success" and 1 <= len(body["data"]) <= 3, body
    assert all(isinstance(q, str) and q.strip() and len(q) <= 80 for q in body["data"])


def test_conversation_variables_follow_the_real_orchestrators_turns(stack) -> None:
    """A chatflow's assigner keeps variables between turns; Dify's variables API reads them back."""
    graph = {"nodes": [
        {"id": "start", "data": {"type": "start"}},
        {"id": "as", "data": {"type": "assigner", "items": [
            {"variable_selector": ["conversation", "turns"], "operation": "+=", "value": 1},
            {"variable_selector": ["conversation", "last"], "operation": "over-write", "input_type": "variable",
             "value": ["sys", "query"]}]}},
        {"id": "ans", "data": {"type": "answer", "answer": "turn {{#conversation.turns#}}"}}],
        "edges": [{"source": "start", "target": "as"}, {"source": "as", "target": "ans"}],
        "conversation_variables": [{"name": "turns", "value_type": "number", "value": 0},
                                   {"name": "last", "value_type": "string", "value": ""}]}
    _, key = app_with_key(stack, "chatflow", graph, name="counter")
    h, url, conv = {"Authorization": f"Bearer {key}"}, f"{stack.gateway_url}/v1", ""
    for query in ("one", "two"):
        body = httpx.post(f"{url}/chat-messages", json={"inputs": {}, "query": query, "user": "v",
                                                        "conversation_id": conv, "response_mode": "blocking"},
                          headers=h, timeout=60).json()
        conv = body["conversation_id"]
    assert body["answer"] == "turn 2", body
    r = httpx.get(f"{url}/conversations/{conv}/variables", params={"user": "v"}, headers=h, timeout=30)
    assert r.status_code == 200, r.text
    assert {v["name"]: v["value"] for v in r.json()["data"]} == {"turns": "2", "last": "two"}
    # Set through the API: the real orchestrator's next turn counts on from it.
    turns = next(v for v in r.json()["data"] if v["name"] == "turns")
    r = httpx.put(f"{url}/conversations/{conv}/variables/{turns['id']}", json={"value": 10, "user": "v"},
                  headers=h, timeout=30)
    assert r.status_code == 200 and r.json()["value"] == "10", r.text
    body = httpx.post(f"{url}/chat-messages", json={"inputs": {}, "query": "three", "user": "v",
                                                    "conversation_id": conv, "response_mode": "blocking"},
                      headers=h, timeout=60).json()
    assert body["answer"] == "turn 11", body


def test_workflow_run_blocking_streaming_detail_and_chat_stop(stack) -> None:
    _, key = app_with_key(stack, "workflow", TEMPLATE_FLOW, name="greeter")
    h = {"Authorization": f"Bearer {key}"}
    url = f"{stack.gateway_url}/v1"
    r = httpx.post(f"{url}/workflows/run", json={"inputs": {"city": "Lyon"}, "user": "u", "response_mode": "blocking"},
                   headers=h, timeout=60)
    body = r.json()
    assert r.status_code == 200 and body["data"]["status"] == "succeeded", body
    assert body["data"]["outputs"] == {"greeting": "Hello Lyon!"}
    assert set(body["data"]) >= {"id", "workflow_id", "status", "outputs", "error", "elapsed_time", "total_tokens",
                                 "total_steps", "created_at", "finished_at"}
    detail = httpx.get(f"{url}/workflows/run/{body['workflow_run_id']}", headers=h).json()
    assert detail["status"] == "succeeded" and detail["inputs"] == {"city": "Lyon"}
    assert detail["outputs"] == {"greeting": "Hello Lyon!"}

    with httpx.stream("POST", f"{url}/workflows/run", json={"inputs": {"city": "Oslo"}, "user": "u",
                                                            "response_mode": "streaming"}, headers=h, timeout=60) as s:
        events = data_events(s.iter_lines())
    names = [e["event"] for e in events]
    assert names[0] == "workflow_started" and names[-1] == "workflow_finished"
    assert {"node_started", "node_finished", "text_chunk"} <= set(names)
    assert events[-1]["data"]["outputs"] == {"greeting": "Hello Oslo!"}
    run_id = events[0]["workflow_run_id"]
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", headers={**h, "Last-Event-ID": "3"}, timeout=30) as s:
        resumed = data_events(s.iter_lines())
    assert len(resumed) == len(events) - 3 and resumed[-1]["event"] == "workflow_finished"

    # Stop a chat while it streams: the run ends as stopped.
    chat_graph = {"nodes": [
        {"id": "start", "data": {"type": "start"}},
        {"id": "llm", "data": {"type": "llm", "model": {"name": "gemma3:270m",
                                                        "completion_params": {"max_tokens": 2000}},
                               "prompt_template": [{"role": "user", "text": "{{#sys.query#}}"}]}},
        {"id": "ans", "data": {"type": "answer", "answer": "{{#llm.text#}}"}}],
        "edges": [{"source": "start", "target": "llm"}, {"source": "llm", "target": "ans"}]}
    _, chat_key = app_with_key(stack, "chatflow", chat_graph, name="long talker")
    ch = {"Authorization": f"Bearer {chat_key}"}
    task_id, names = None, []
    with httpx.stream("POST", f"{url}/chat-messages", json={"inputs": {}, "query": "Tell a very long story",
                                                            "user": "u", "response_mode": "streaming"},
                      headers=ch, timeout=120) as s:
        for line in s.iter_lines():
            if not line.startswith("data: "):
                continue
            ev = json.loads(line[6:])
            names.append(ev["event"])
            if ev["event"] == "message" and task_id is None:
                task_id = ev["task_id"]
                r = httpx.post(f"{url}/chat-messages/{task_id}/stop", json={"user": "u"}, headers=ch)
                assert r.json() == {"result": "success"}
    assert task_id is not None  # stopped, not run out of tokens: the run's status below says so, not a clock
    finished = [e for e in names if e == "workflow_finished"]
    assert finished and names[-1] == "message_end", names  # as Dify ends a stopped chatflow answer
    detail = httpx.get(f"{url}/workflows/run/{task_id}", headers=ch).json()
    assert detail["status"] == "stopped", (detail, names[-4:])


def test_knowledge_api_in_difys_shapes(stack) -> None:
    key = httpx.post(stack.ws("/dataset-api-keys"), headers=stack.console).json()["token"]
    h = {"Authorization": f"Bearer {key}"}
    url = f"{stack.gateway_url}/v1/datasets"
    ds = httpx.post(url, json={"name": "Handbook", "description": "team notes"}, headers=h, timeout=30).json()
    assert {"id", "name", "document_count", "embedding_model", "indexing_technique"} <= set(ds), ds
    dup = httpx.post(url, json={"name": "Handbook"}, headers=h)
    assert dup.status_code == 409 and set(dup.json()) >= {"code", "message", "status"}
    bad = httpx.post(url, json={"description": "no name"}, headers=h)
    assert bad.status_code == 400 and bad.json()["field"] == "name"
    listed = httpx.get(url, params={"page": 1, "limit": 20}, headers=h).json()
    assert {"data", "has_more", "limit", "total", "page"} <= set(listed) and listed["total"] == 1

    created = httpx.post(f"{url}/{ds['id']}/document/create-by-text", json={
        "name": "volcanoes", "text": "Hekla erupted in 2000. Katla sleeps under the Myrdalsjokull glacier.",
        "indexing_technique": "high_quality", "process_rule": {"mode": "automatic"}}, headers=h, timeout=30).json()
    assert {"document", "batch"} <= set(created), created
    doc_id = created["document"]["id"]
    status = {}
    for _ in range(120):
        status = httpx.get(f"{url}/{ds['id']}/documents/{created['batch']}/indexing-status", headers=h).json()
        if status["data"][0]["indexing_status"] in ("completed", "error"):
            break
        time.sleep(0.5)
    assert status["data"][0]["indexing_status"] == "completed", status
    assert {"completed_segments", "total_segments", "processing_started_at", "completed_at", "error"} \
        <= set(status["data"][0])

    by_file = httpx.post(f"{url}/{ds['id']}/document/create-by-file", headers=h, timeout=30,
                         data={"data": json.dumps({"indexing_technique": "high_quality",
                                                   "process_rule": {"mode": "automatic"}})},
                         files={"file": ("chess.md", b"# Chess\n\nThe Sicilian defence answers 1.e4 with c5.\n",
                                         "text/markdown")}).json()
    assert by_file["document"]["name"] == "chess.md"
    docs = httpx.get(f"{url}/{ds['id']}/documents", headers=h).json()
    assert {d["id"] for d in docs["data"]} == {doc_id, by_file["document"]["id"]}

    segs = httpx.get(f"{url}/{ds['id']}/documents/{doc_id}/segments", headers=h).json()
    assert segs["data"] and {"id", "position", "document_id", "content", "enabled", "status"} <= set(segs["data"][0])
    added = httpx.post(f"{url}/{ds['id']}/documents/{doc_id}/segments",
                       json={"segments": [{"content": "Eyjafjallajokull closed airspace in 2010."}]}, headers=h,
                       timeout=30).json()
    seg_id = added["data"][0]["id"]
    upd = httpx.post(f"{url}/{ds['id']}/documents/{doc_id}/segments/{seg_id}",
                     json={"segment": {"content": "Eyjafjallajokull erupted in 2010.", "enabled": True}}, headers=h,
                     timeout=30).json()
    assert upd["data"]["content"] == "Eyjafjallajokull erupted in 2010."

    hits = httpx.post(f"{url}/{ds['id']}/retrieve", json={"query": "Which volcano sleeps under a glacier?",
                                                         "retrieval_model": {"search_method": "hybrid_search",
                                                                             "top_k": 3}}, headers=h, timeout=30)
    assert hits.status_code == 200, hits.text
    rec = hits.json()
    assert rec["query"] == {"content": "Which volcano sleeps under a glacier?"} and rec["records"]
    assert {"segment", "score"} <= set(rec["records"][0]) and "document" in rec["records"][0]["segment"]
    older = httpx.post(f"{url}/{ds['id']}/hit-testing", json={"query": "volcano"}, headers=h, timeout=30)
    assert older.status_code == 200 and older.json()["records"], older.text  # Dify's older name for retrieve

    # Another workspace's dataset key sees none of this.
    ws_b = httpx.post(f"{stack.gateway_url}/console/api/workspaces", json={"name": "other"},
                      headers=stack.console).json()["id"]
    key_b = httpx.post(f"{stack.gateway_url}/console/api/workspaces/{ws_b}/dataset-api-keys",
                       headers=stack.console).json()["token"]
    hb = {"Authorization": f"Bearer {key_b}"}
    assert httpx.get(f"{url}/{ds['id']}", headers=hb).status_code == 404
    assert httpx.get(url, headers=hb).json()["data"] == []
    assert httpx.post(f"{url}/{ds['id']}/retrieve", json={"query": "volcano"}, headers=hb).status_code == 404
    assert httpx.delete(f"{url}/{ds['id']}/documents/{doc_id}", headers=hb).status_code == 404

    assert httpx.delete(f"{url}/{ds['id']}/documents/{doc_id}/segments/{seg_id}", headers=h).status_code == 204
    assert httpx.delete(f"{url}/{ds['id']}/documents/{doc_id}", headers=h).status_code == 204
    assert httpx.delete(f"{url}/{ds['id']}", headers=h).status_code == 204
    assert httpx.get(f"{url}/{ds['id']}", headers=h).status_code == 404


def test_openai_sdk_streams_and_calls_a_tool(stack) -> None:
    from openai import OpenAI

    _, key = app_with_key(stack, "chat", name="openai", max_tokens=MAX_TOKENS)
    client = OpenAI(base_url=f"{stack.gateway_url}/v1", api_key=key, timeout=120, max_retries=0)
    assert "gemma3:270m" in {m.id for m in client.models.list()}
    stream = client.chat.completions.create(model="gemma3:270m", stream=True, max_tokens=24,
                                            messages=[{"role": "user", "content": "Say hello"}])
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert sum(len(c.choices[0].delta.content or "") for c in chunks) > 0

    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}},
                                                              "required": ["city"]}}}]
    res = client.chat.completions.create(model="gemma3:270m", tools=tools, tool_choice="required",
                                         messages=[{"role": "user", "content": "Weather in Paris?"}])
    call = res.choices[0].message.tool_calls[0]
    assert res.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)
    assert res.choices[0].message.content is None  # the JSON the grammar forced is not text too

    emb = client.embeddings.create(model="all-minilm:l6-v2", input=["one", "two"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 384
    usage = httpx.get(stack.ws("/usage"), headers=stack.console).json()
    assert usage["tokens_today"] > 0  # the key's workspace was charged for what it used
