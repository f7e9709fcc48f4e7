"""The Dify-compatible service API over the gateway's real NATS and Postgres, with a scripted
stand-in for the orchestrator (tests/test_gateway_e2e.py runs the real one)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from gateway_testkit import Console, make_app, republish

from loom_common.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]  # a hang fails with a traceback


def sse_data(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


async def test_chat_blocking_streaming_conversations_feedback(gateway, admin, orchestrator) -> None:
    c = gateway.client
    _, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    r = await c.post("/v1/chat-messages", json={"inputs": {}, "query": "hi", "user": "u1",
                                                "response_mode": "blocking"}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["event"] == "message" and body["answer"] == "tok0 tok1 tok2 "
    assert body["metadata"]["usage"]["total_tokens"] == 7
    conv = body["conversation_id"]
    assert orchestrator.requests[-1].app_mode == "chat"
    assert [n["id"] for n in orchestrator.requests[-1].graph["nodes"]] == ["start", "llm", "answer"]

    r = await c.post("/v1/chat-messages", json={"inputs": {}, "query": "again", "user": "u1",
                                                "response_mode": "streaming", "conversation_id": conv}, headers=h)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_data(r.text)
    assert [e["event"] for e in events][-1] == "message_end"
    assert {e["conversation_id"] for e in events} == {conv}
    assert "".join(e.get("answer", "") for e in events if e["event"] == "message") == "tok0 tok1 tok2 "
    assert "id: 2" in r.text  # each event carries its run seq for Last-Event-ID (seq 1 is workflow_started)

    convs = (await c.get("/v1/conversations", params={"user": "u1"}, headers=h)).json()
    assert [x["id"] for x in convs["data"]] == [conv] and convs["has_more"] is False
    assert (await c.get("/v1/conversations", params={"user": "someone-else"}, headers=h)).json()["data"] == []
    msgs = (await c.get("/v1/messages", params={"user": "u1", "conversation_id": conv}, headers=h)).json()
    assert [m["query"] for m in msgs["data"]] == ["hi", "again"]
    assert all(m["answer"] == "tok0 tok1 tok2 " for m in msgs["data"])

    mid = msgs["data"][0]["id"]
    fb = await c.post(f"/v1/messages/{mid}/feedbacks", json={"rating": "like", "user": "u1"}, headers=h)
    assert fb.json() == {"result": "success"}
    msgs = (await c.get("/v1/messages", params={"user": "u1", "conversation_id": conv}, headers=h)).json()
    assert msgs["data"][0]["feedback"] == {"rating": "like"}
    bad = await c.post(f"/v1/messages/{mid}/feedbacks", json={"rating": "meh", "user": "u1"}, headers=h)
    assert bad.status_code == 400 and bad.json()["field"] == "rating"

    renamed = await c.post(f"/v1/conversations/{conv}/name", json={"name": "Renamed", "user": "u1"}, headers=h)
    assert renamed.json()["name"] == "Renamed"
    # auto_generate: the model names it; none answers here, so the first query's first line does.
    auto = await c.post(f"/v1/conversations/{conv}/name", json={"auto_generate": True, "user": "u1"}, headers=h)
    assert auto.status_code == 200 and auto.json()["name"] == "hi", auto.text
    theirs = await c.post(f"/v1/conversations/{conv}/name", json={"auto_generate": True, "user": "u2"}, headers=h)
    assert theirs.status_code == 404 and theirs.json()["code"] == "conversation_not_exists", theirs.text
    nameless = await c.post(f"/v1/conversations/{conv}/name", json={"user": "u1"}, headers=h)
    assert nameless.status_code == 400 and nameless.json()["field"] == "name", nameless.text
    gone = await c.request("DELETE", f"/v1/conversations/{conv}", json={"user": "u1"}, headers=h)
    assert gone.json() == {"result": "success"}
    asked = len(orchestrator.requests)
    missing = await c.post("/v1/chat-messages", json={"inputs": {}, "query": "x", "user": "u1",
                                                      "conversation_id": conv}, headers=h)
    assert missing.status_code == 404 and missing.json()["code"] == "conversation_not_exists"
    assert len(orchestrator.requests) == asked  # no run was asked for


async def test_first_requests_of_a_new_end_user_at_once(gateway, admin, orchestrator) -> None:
    """The run's rows are one statement; concurrent first requests of one end user share its row."""
    c = gateway.client
    _, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    replies = await asyncio.gather(*(c.post("/v1/chat-messages", json={"inputs": {}, "query": f"q{i}", "user": "racer"},
                                            headers=h) for i in range(6)))
    assert [r.status_code for r in replies] == [200] * 6, [r.text for r in replies]
    convs = (await c.get("/v1/conversations", params={"user": "racer", "limit": 20}, headers=h)).json()["data"]
    assert {x["id"] for x in convs} == {r.json()["conversation_id"] for r in replies} and len(convs) == 6
    pool = gateway.rt.pool
    assert await pool.fetchval("SELECT count(*) FROM end_users WHERE session_id = 'racer'") == 1
    assert await pool.fetchval("SELECT count(*) FROM runs r JOIN messages m ON m.run_id = r.id AND m.id = r.message_id"
                               " WHERE r.end_user_id = (SELECT id FROM end_users WHERE session_id = 'racer')") == 6


async def test_validation_errors_name_the_field(gateway, admin) -> None:
    c = gateway.client
    _, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    r = await c.post("/v1/chat-messages", json={"inputs": {}, "user": "u1"}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "query" and r.json()["code"] == "invalid_param"
    r = await c.post("/v1/chat-messages", json={"inputs": [], "query": "q", "user": "u1"}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "inputs"
    r = await c.post("/v1/chat-messages", content=b"{not json", headers={**h, "content-type": "application/json"})
    assert r.status_code == 400
    r = await c.post("/v1/workflows/run", json={"inputs": {}, "user": "u"}, headers=h)
    assert r.status_code == 400 and r.json()["code"] == "not_workflow_app"
    r = await c.post("/v1/chat-messages", json={"query": "q", "user": "u"}, headers={"Authorization": "Bearer app-x"})
    assert r.status_code == 401 and r.json() == {"code": "unauthorized", "message": "Access token is invalid",
                                                 "status": 401}


async def test_chat_and_agent_apps_stream_message_events_and_chatflow_adds_the_workflow_ones(
        gateway, admin, orchestrator) -> None:
    """As Dify: basic chat and agent apps stream message-level events only (an agent app's answer
    as `agent_message`); a chatflow ("advanced-chat") app streams its workflow and node events
    too. The same run events for all three."""
    c = gateway.client
    seen, named, thoughts = {}, {}, {}
    for mode in ("chat", "agent", "chatflow"):
        _, key = await make_app(c, admin, mode, name=mode)
        h = {"Authorization": f"Bearer {key}"}
        r = await c.post("/v1/chat-messages", json={"inputs": {}, "query": "hi", "user": "u",
                                                    "response_mode": "streaming"}, headers=h)
        assert r.status_code == 200, r.text
        seen[mode] = [e["event"] for e in sse_data(r.text)]
        blocking = await c.post("/v1/chat-messages", json={"inputs": {}, "query": "hi", "user": "u",
                                                           "response_mode": "blocking"}, headers=h)
        named[mode] = {blocking.json()["mode"], (await c.get("/v1/info", headers=h)).json()["mode"]}
        history = (await c.get("/v1/messages", params={"user": "u", "conversation_id": blocking.json()[
            "conversation_id"]}, headers=h)).json()["data"]
        thoughts[mode] = [(t["position"], t["thought"], t["tool"]) for t in history[0]["agent_thoughts"]]
    assert named == {"chat": {"chat"}, "agent": {"agent-chat"}, "chatflow": {"advanced-chat"}}  # Dify's names
    # An agent's rounds are listed with its message, as Dify's messages API does.
    assert thoughts == {"chat": [], "agent": [(1, "thinking", "math.eval")], "chatflow": []}
    assert seen["chat"] == ["message", "message", "message", "message_end"]
    assert seen["agent"] == ["agent_thought", "agent_message", "agent_message", "agent_message", "message_end"]
    assert seen["chatflow"] == ["workflow_started", "message", "message", "message", "message_end"]


async def test_suggested_questions_follow_difys_rules(gateway, admin, orchestrator) -> None:
    c = gateway.client
    app_id, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    body = (await c.post("/v1/chat-messages", json={"inputs": {}, "query": "hi", "user": "u1",
                                                    "response_mode": "blocking"}, headers=h)).json()
    mid = body["message_id"]
    params = (await c.get("/v1/parameters", params={"user": "u1"}, headers=h)).json()
    assert params["suggested_questions_after_answer"] == {"enabled": False}
    r = await c.get(f"/v1/messages/{mid}/suggested", params={"user": "u1"}, headers=h)
    assert r.status_code == 400 and r.json()["message"] == "Suggested Questions Is Disabled.", r.text
    for target, user in ((mid, "u2"), ("no-such-message", "u1")):  # not the caller's; no such message
        r = await c.get(f"/v1/messages/{target}/suggested", params={"user": user}, headers=h)
        assert r.status_code == 404 and r.json()["code"] == "message_not_exists", r.text
    r = await c.get(f"/v1/messages/{mid}/suggested", headers=h)
    assert r.status_code == 400 and r.json()["field"] == "user", r.text
    _, wf_key = await make_app(c, admin, "workflow", name="wf")
    r = await c.get(f"/v1/messages/{mid}/suggested", params={"user": "u1"},
                    headers={"Authorization": f"Bearer {wf_key}"})
    assert r.status_code == 400 and r.json()["code"] == "not_chat_app", r.text

    # Turned on in the app's features: the model is asked (none answers here: a clean 503, never a 500).
    feature = {"suggested_questions_after_answer": {"enabled": True}}
    await republish(c, admin, app_id, lambda dsl: dsl["workflow"].update(features=feature))
    params = (await c.get("/v1/parameters", params={"user": "u1"}, headers=h)).json()
    assert params["suggested_questions_after_answer"] == {"enabled": True}
    r = await c.get(f"/v1/messages/{mid}/suggested", params={"user": "u1"}, headers=h)
    assert r.status_code == 503 and set(r.json()) >= {"code", "message", "status"}, r.text


async def test_conversation_variables_as_the_latest_turn_left_them(gateway, admin, orchestrator) -> None:
    c = gateway.client
    app_id, key = await make_app(c, admin, "chatflow")
    declared = [{"id": "v-topic", "name": "topic", "value_type": "string", "value": "none", "description": "d"},
                {"name": "seen", "value_type": "array[string]", "value": ["a"]}]
    await republish(c, admin, app_id, lambda dsl: dsl["workflow"]["graph"].update(conversation_variables=declared))
    h = {"Authorization": f"Bearer {key}"}
    conv = None
    for query in ("first", "second"):
        r = await c.post("/v1/chat-messages", json={"inputs": {}, "query": query, "user": "u1", "conversation_id":
                                                    conv or "", "response_mode": "streaming"}, headers=h)
        conv = sse_data(r.text)[-1]["conversation_id"]
        assert "conversation_variables" not in sse_data(r.text)[-1]  # for the gateway's record, not the client
    r = await c.get(f"/v1/conversations/{conv}/variables", params={"user": "u1"}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["limit"], body["has_more"]) == (20, False)
    assert [(v["id"], v["name"], v["value_type"], v["value"]) for v in body["data"]] == [
        ("v-topic", "topic", "string", "second"), (body["data"][1]["id"], "seen", "array[string]", '["a"]')]
    assert body["data"][0]["description"] == "d" and body["data"][1]["updated_at"] >= body["data"][1]["created_at"]
    page = (await c.get(f"/v1/conversations/{conv}/variables", params={"user": "u1", "limit": 1}, headers=h)).json()
    assert [v["name"] for v in page["data"]] == ["topic"] and page["has_more"] is True
    rest = (await c.get(f"/v1/conversations/{conv}/variables", params={"user": "u1", "last_id": "v-topic"},
                        headers=h)).json()
    assert [v["name"] for v in rest["data"]] == ["seen"]
    named = (await c.get(f"/v1/conversations/{conv}/variables", params={"user": "u1", "variable_name": "seen"},
                         headers=h)).json()
    assert [v["name"] for v in named["data"]] == ["seen"]
    r = await c.get(f"/v1/conversations/{conv}/variables", params={"user": "u2"}, headers=h)  # not theirs
    assert r.status_code == 404 and r.json()["code"] == "conversation_not_exists", r.text

    # Set through the API: shown at once, carried by the next run request, then taken up by its turn.
    seen_id = body["data"][1]["id"]
    url = f"/v1/conversations/{conv}/variables/{seen_id}"
    r = await c.put(url, json={"value": ["z"], "user": "u1"}, headers=h)
    assert r.status_code == 200 and (r.json()["name"], r.json()["value"]) == ("seen", '["z"]'), r.text
    values = (await c.get(f"/v1/conversations/{conv}/variables", params={"user": "u1"}, headers=h)).json()["data"]
    assert [v["value"] for v in values] == ["second", '["z"]']
    for query, carried in (("third", {"seen": ["z"]}), ("fourth", None)):
        await c.post("/v1/chat-messages", json={"inputs": {}, "query": query, "user": "u1", "conversation_id": conv,
                                                "response_mode": "blocking"}, headers=h)
        assert orchestrator.requests[-1].conversation_variables == carried
    values = (await c.get(f"/v1/conversations/{conv}/variables", params={"user": "u1"}, headers=h)).json()["data"]
    assert [v["value"] for v in values] == ["fourth", '["z"]']  # the turns kept it
    # A turn that started before a value was set and ends after it does not undo it: still pending.
    turn = asyncio.create_task(c.post("/v1/chat-messages", json={"inputs": {}, "query": "slow", "user": "u1",
                                                                 "conversation_id": conv, "response_mode": "blocking"},
                                      headers=h))
    while orchestrator.requests[-1].query != "slow":  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert (await c.put(url, json={"value": ["late"], "user": "u1"}, headers=h)).status_code == 200
    assert (await turn).status_code == 200
    values = (await c.get(f"/v1/conversations/{conv}/variables", params={"user": "u1"}, headers=h)).json()["data"]
    assert [v["value"] for v in values] == ["slow", '["late"]']
    await c.post("/v1/chat-messages", json={"inputs": {}, "query": "fifth", "user": "u1", "conversation_id": conv,
                                            "response_mode": "blocking"}, headers=h)
    assert orchestrator.requests[-1].conversation_variables == {"seen": ["late"]}
    for value, code in ((5, "conversation_variable_type_mismatch"), (["a", 1], "conversation_variable_type_mismatch")):
        r = await c.put(url, json={"value": value, "user": "u1"}, headers=h)
        assert r.status_code == 400 and (r.json()["code"], r.json()["field"]) == (code, "value"), r.text
    r = await c.put(f"/v1/conversations/{conv}/variables/nope", json={"value": "x", "user": "u1"}, headers=h)
    assert r.status_code == 404 and r.json()["code"] == "conversation_variable_not_exists", r.text
    r = await c.put(url, json={"value": ["x"], "user": "u2"}, headers=h)
    assert r.status_code == 404 and r.json()["code"] == "conversation_not_exists", r.text
    r = await c.put(url, json={"user": "u1"}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "value", r.text
    _, wf_key = await make_app(c, admin, "workflow", name="wf")
    r = await c.get(f"/v1/conversations/{conv}/variables", params={"user": "u1"},
                    headers={"Authorization": f"Bearer {wf_key}"})
    assert r.status_code == 400 and r.json()["code"] == "not_chat_app", r.text


async def test_workflow_logs_page_and_filter_an_apps_runs(gateway, admin, orchestrator) -> None:
    c = gateway.client
    _, key = await make_app(c, admin, "workflow", name="logged")
    h = {"Authorization": f"Bearer {key}"}
    ids = []
    for user, city in (("ann", "Lyon"), ("bob", "Oslo"), ("ann", "Kyoto_50%")):
        r = await c.post("/v1/workflows/run", json={"inputs": {"city": city}, "user": user,
                                                    "response_mode": "blocking"}, headers=h)
        assert r.status_code == 200, r.text
        ids.append(r.json()["workflow_run_id"])

    logs = (await c.get("/v1/workflows/logs", headers=h)).json()
    assert (logs["page"], logs["limit"], logs["total"], logs["has_more"]) == (1, 20, 3, False)
    assert [log["id"] for log in logs["data"]] == ids[::-1]  # newest first
    first = logs["data"][0]
    assert first["workflow_run"]["status"] == "succeeded" and first["workflow_run"]["total_steps"] == 2
    assert first["created_by_end_user"]["session_id"] == "ann" and first["created_from"] == "service-api"

    paged = (await c.get("/v1/workflows/logs", params={"page": 2, "limit": 2}, headers=h)).json()
    assert [log["id"] for log in paged["data"]] == [ids[0]] and paged["has_more"] is False
    past = (await c.get("/v1/workflows/logs", params={"page": 9, "limit": 2}, headers=h)).json()
    assert (past["data"], past["total"], past["has_more"]) == ([], 3, False)  # still counts what matches
    assert (await c.get("/v1/workflows/logs", params={"limit": 2}, headers=h)).json()["has_more"] is True
    by = {}
    for name, params in (("oslo", {"keyword": "Oslo"}), ("literal", {"keyword": "_50%"}), ("wild", {"keyword": "%"}),
                         ("ann", {"created_by_end_user_session_id": "ann"}), ("failed", {"status": "failed"})):
        by[name] = [log["id"] for log in (await c.get("/v1/workflows/logs", params=params, headers=h)).json()["data"]]
    assert by == {"oslo": [ids[1]], "literal": [ids[2]], "wild": [ids[2]], "ann": [ids[2], ids[0]], "failed": []}

    r = await c.get("/v1/workflows/logs", params={"status": "maybe"}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "status"
    _, chat_key = await make_app(c, admin, "chat", name="chatty")
    r = await c.get("/v1/workflows/logs", headers={"Authorization": f"Bearer {chat_key}"})
    assert r.status_code == 400 and r.json()["code"] == "not_workflow_app"


async def test_a_stopped_chat_stream_ends_with_message_end_in_every_chat_mode(gateway, admin, orchestrator) -> None:
    """As Dify: a stopped chat's stream still ends with message_end (a chatflow's after its
    workflow_finished), and the run is recorded as stopped."""
    c = gateway.client
    for mode in ("chat", "chatflow"):
        _, key = await make_app(c, admin, mode, name=f"stopped {mode}")
        h = {"Authorization": f"Bearer {key}"}
        names, task_id = [], None
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as real, \
                real.stream("POST", "/v1/chat-messages", json={"inputs": {}, "query": "slow please", "user": "u",
                                                               "response_mode": "streaming"}, headers=h) as r:
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                ev = json.loads(line[6:])
                names.append(ev["event"])
                if ev["event"] == "message" and task_id is None:
                    task_id = ev["task_id"]
                    stop = await c.post(f"/v1/chat-messages/{task_id}/stop", json={"user": "u"}, headers=h)
                    assert stop.json() == {"result": "success"}
        assert names[-1] == "message_end", (mode, names)
        assert ("workflow_finished" in names) == (mode == "chatflow"), (mode, names)
        detail = (await c.get(f"/v1/workflows/run/{task_id}", headers=h)).json()
        assert detail["status"] == "stopped", (mode, detail)


async def test_inputs_that_break_the_apps_form_are_refused_naming_the_field(gateway, admin, orchestrator) -> None:
    c = gateway.client
    app_id, key = await make_app(c, admin, "workflow", name="formal")
    def with_form(dsl: dict) -> None:
        start = next(n for n in dsl["workflow"]["graph"]["nodes"] if n["data"]["type"] == "start")
        start["data"]["variables"] = [
            {"variable": "city", "type": "text-input", "required": True, "max_length": 10},
            {"variable": "n", "type": "number", "required": False},
            {"variable": "kind", "type": "select", "required": False, "options": ["a", "b"]}]

    await republish(c, admin, app_id, with_form)
    h = {"Authorization": f"Bearer {key}"}
    for inputs, field, says in (({}, "inputs.city", "is required"), ({"city": "x" * 11}, "inputs.city", "longer"),
                                ({"city": "Lyon", "n": "many"}, "inputs.n", "number"),
                                ({"city": "Lyon", "kind": "c"}, "inputs.kind", "one of")):
        r = await c.post("/v1/workflows/run", json={"inputs": inputs, "user": "u", "response_mode": "blocking"},
                         headers=h)
        assert r.status_code == 400 and r.json()["field"] == field and says in r.json()["message"], r.text
    ok = await c.post("/v1/workflows/run", json={"inputs": {"city": "Lyon", "n": "3", "kind": "a"}, "user": "u",
                                                 "response_mode": "blocking"}, headers=h)
    assert ok.status_code == 200, ok.text
    assert (await c.get("/v1/workflows/logs", headers=h)).json()["total"] == 1  # nothing refused was recorded


async def test_workflow_run_detail_stop_and_resume(gateway, admin, orchestrator) -> None:
    c = gateway.client
    _, key = await make_app(c, admin, "workflow")
    h = {"Authorization": f"Bearer {key}"}
    r = await c.post("/v1/workflows/run", json={"inputs": {"x": 1}, "user": "u", "response_mode": "blocking"},
                     headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"]["status"] == "succeeded" and body["data"]["outputs"] == {"echo": {"x": 1}}
    assert body["workflow_run_id"] == body["task_id"] == body["data"]["id"]
    detail = (await c.get(f"/v1/workflows/run/{body['workflow_run_id']}", headers=h)).json()
    assert detail["status"] == "succeeded" and detail["inputs"] == {"x": 1} and detail["total_steps"] == 2

    streamed = await c.post("/v1/workflows/run", json={"inputs": {}, "user": "u", "response_mode": "streaming"},
                            headers=h)
    events = sse_data(streamed.text)
    assert next(e["event"] for e in events) == "workflow_started" and events[-1]["event"] == "workflow_finished"
    assert all("workflow_run_id" in e and "data" in e for e in events)
    run_id = events[0]["workflow_run_id"]
    # Resume after seq 2: only later events come again.
    resumed = await c.get(f"/v1/runs/{run_id}/events", headers={**h, "Last-Event-ID": "2"})
    again = sse_data(resumed.text)
    assert len(again) == len(events) - 2 and again[-1]["event"] == "workflow_finished"

    # A run that goes on until stopped, stopped by task id while a blocking call waits for it.
    waiting = asyncio.create_task(c.post("/v1/workflows/run", json={"inputs": {"until_stopped": True}, "user": "u",
                                                                     "response_mode": "blocking"}, headers=h))
    await eventually(lambda: len(orchestrator.requests) == 3, "the orchestrator got the third run")
    task_id = orchestrator.requests[-1].run_id
    other_user = await c.post(f"/v1/workflows/tasks/{task_id}/stop", json={"user": "intruder"}, headers=h)
    assert other_user.status_code == 404
    stop = await c.post(f"/v1/workflows/tasks/{task_id}/stop", json={"user": "u"}, headers=h)
    assert stop.json() == {"result": "success"}
    done = (await waiting).json()
    assert done["data"]["status"] == "stopped"


async def test_streaming_disconnect_does_not_cancel_and_run_is_recorded(gateway, admin, orchestrator) -> None:
    c = gateway.client
    _, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gateway.base_url) as real, \
            real.stream("POST", "/v1/chat-messages", json={"inputs": {}, "query": "slow please", "user": "u",
                                                           "response_mode": "streaming"}, headers=h) as r:
        assert r.status_code == 200
        first, pinged = None, False
        async for line in r.aiter_lines():
            if line.startswith("data: ") and first is None:
                first = json.loads(line[6:])
            pinged = pinged or line == "event: ping"
            if first and pinged:
                break  # disconnect mid-run
    assert first["event"] == "message" and pinged
    # The client went away: the run is not cancelled and its outcome still lands in the records.
    run = orchestrator.requests[-1]
    conv = run.conversation_id
    async def recorded() -> dict | None:
        msgs = (await c.get("/v1/messages", params={"user": "u", "conversation_id": conv}, headers=h)).json()
        return msgs if msgs["data"][0]["status"] == "normal" else None

    msgs = await eventually(recorded, "the run's outcome in /v1/messages")
    assert run.run_id not in orchestrator.cancelled
    assert msgs["data"][0]["answer"].startswith("tok0 tok1") and msgs["data"][0]["status"] == "normal"


async def test_files_parameters_info(gateway, admin) -> None:
    c = gateway.client
    _, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    up = await c.post("/v1/files/upload", files={"file": ("notes.txt", b"hello", "text/plain")}, data={"user": "u"},
                      headers=h)
    assert up.status_code == 201, up.text
    assert set(up.json()) >= {"id", "name", "size", "extension", "mime_type", "created_by", "created_at"}
    bad = await c.post("/v1/files/upload", files={"file": ("x.exe", b"MZ", "application/x-msdownload")},
                       data={"user": "u"}, headers=h)
    assert bad.status_code == 400 and bad.json()["code"] == "unsupported_file_type"
    params = (await c.get("/v1/parameters", params={"user": "u"}, headers=h)).json()
    assert {"opening_statement", "user_input_form", "file_upload", "system_parameters"} <= set(params)
    assert (await c.get("/v1/info", headers=h)).json()["mode"] == "chat"
    site = (await c.get("/v1/site", headers=h)).json()  # Dify's WebApp settings
    assert site["title"] == "app" and {"icon", "description", "default_language"} <= set(site)
    big = await c.post("/v1/chat-messages", content=b"x" * (17 * 1024 * 1024), headers={**h, "content-type":
                                                                                         "application/json"})
    assert big.status_code == 413


async def test_run_files_resolved_within_the_apps_workspace(gateway, admin, orchestrator) -> None:
    """`files[].upload_file_id` of a run request (issue 18): another workspace's file, or an id
    never uploaded, is refused with Dify's 400; the workspace's own is passed on, completed."""
    import uuid

    c, h = gateway.client, admin.headers
    _, key = await make_app(c, admin, "chat")
    kh = {"Authorization": f"Bearer {key}"}
    other_ws = (await c.post("/console/api/workspaces", json={"name": "B"}, headers=h)).json()["id"]
    other = Console(admin.token, other_ws, admin.account_id)
    _, other_key = await make_app(c, other, "chat", name="b-app")
    theirs = (await c.post("/v1/files/upload", files={"file": ("b.txt", b"theirs", "text/plain")}, data={"user": "u"},
                           headers={"Authorization": f"Bearer {other_key}"})).json()["id"]
    mine = (await c.post("/v1/files/upload", files={"file": ("a.txt", b"mine", "text/plain")}, data={"user": "u"},
                         headers=kh)).json()["id"]

    asked = len(orchestrator.requests)
    for file_id in (theirs, str(uuid.uuid4())):
        r = await c.post("/v1/chat-messages", headers=kh, json={
            "query": "q", "user": "u", "response_mode": "blocking",
            "files": [{"type": "document", "transfer_method": "local_file", "upload_file_id": file_id}]})
        assert r.status_code == 400, r.text
        assert (r.json()["code"], r.json()["message"]) == ("invalid_param", "Invalid upload file")
    assert len(orchestrator.requests) == asked   # nothing was asked for

    ok = await c.post("/v1/chat-messages", headers=kh, json={
        "query": "q", "user": "u", "response_mode": "blocking",
        "files": [{"type": "document", "transfer_method": "local_file", "upload_file_id": mine}]})
    assert ok.status_code == 200, ok.text
    (sent,) = orchestrator.requests[-1].files
    assert (sent["upload_file_id"], sent["filename"], sent["extension"]) == (mine, "a.txt", "txt")
    convs = (await c.get("/v1/messages", params={"user": "u", "conversation_id": ok.json()["conversation_id"]},
                         headers=kh)).json()["data"]
    assert [f["upload_file_id"] for f in convs[0]["message_files"]] == [mine]
