"""The customer-service template end to end on the real stack (inference, rag, tools,
orchestrator, gateway as processes; real NATS and Postgres): installed into a fresh workspace in
one call, published, and chatted with through the Dify API.

The model is the template tests' scripted backend (template_testkit.ScriptedModel: a SCRIPTED
OpenAI-compatible server on loopback, registered with the real inference service for the
workspace; it is not a model): it answers the question classifier by keywords
and every other prompt with a fixed sentence, and records the prompts it got. So the assertions
are on behaviour and structure, never on wording: the FAQ reaches the answering prompt, the
first turn is in the second turn's prompt (memory), a FAQ document updated through the knowledge
API is what the next turn retrieves, the lexicon labels every turn, and an angry
message, or one asking for a human, flags the handoff on the conversation and opens a ticket
(a row of the tools service's tickets table, written by the built-in tickets.create), and the
turn pauses on the template's human-input node until an agent answers it through the service
API: the agent's reply is the rest of the customer's answer. While flagged the bot stays out
(each turn waits for the agent), until the agent gives the conversation back ("resolve") or
clears the flag through the conversation variables API."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
import httpx
import pytest
from template_testkit import ScriptedModel, install_template

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

SCRIPTED = "scripted-cs"
ANSWER = "Scripted answer."


def _answer(messages: list[dict]) -> str:
    """The scripted backend's reply: the question classifier by keywords, anything else ANSWER."""
    if not messages[0]["content"].startswith("Classify the user's input"):
        return ANSWER
    last = messages[-1]["content"].lower()
    cls = ("human" if any(w in last for w in ("human", "person", "agent")) else
           "complaint" if any(w in last for w in ("furious", "angry", "ridiculous")) else "question")
    return json.dumps({"category_id": cls})


def _answering_prompts(model: ScriptedModel) -> list[list[dict]]:
    return [p for p in model.prompts if not p[0]["content"].startswith("Classify the user's input")]


@pytest.fixture
def scripted_model():
    with ScriptedModel(SCRIPTED, _answer) as model:
        yield model


def _agent_replies(http: httpx.Client, stack, h: dict, turn: dict, reply: str, action: str = "reply") -> str:
    """A human agent answers the turn's paused form through the service API (the form found by
    the turn's task id, as a support tool would); the customer's final answer, once recorded."""
    assert turn.get("status") == "paused", turn
    forms = http.get(f"{stack.gateway_url}/v1/runs/{turn['task_id']}/human-inputs", headers=h).json()["data"]
    [form] = forms
    assert [f["name"] for f in form["fields"]] == ["reply"]
    r = http.post(f"{stack.gateway_url}/v1/runs/{turn['task_id']}/human-inputs/{form['form_id']}", headers=h,
                  json={"inputs": {"reply": reply}, "action": action, "user": "agent-7"})
    assert r.status_code == 200, r.text
    for _ in range(600):
        page = http.get(f"{stack.gateway_url}/v1/messages", headers=h, params={
            "user": "cust-1" if turn.get("_user") is None else turn["_user"],
            "conversation_id": turn["conversation_id"]}).json()["data"]
        message = next(m for m in page if m["id"] == turn["message_id"])
        if message["status"] not in ("running", "paused"):
            assert message["status"] == "normal", message
            return message["answer"]
        time.sleep(0.3)
    raise AssertionError("the agent's reply never finished the turn")


async def _tickets(stack, workspace_id: str) -> list[dict]:
    """The tools service's ticket rows of the workspace (read as that service, with its own URL)."""
    tools = next(p for p in stack.procs if p.name == "tools")
    conn = await asyncpg.connect(tools.env["LOOM_DATABASE_URL"])
    try:
        rows = await conn.fetch("SELECT * FROM tools.tickets WHERE tenant_id = $1 ORDER BY id", workspace_id)
    finally:
        await conn.close()
    return [dict(r) for r in rows]


def _wait_indexed(http: httpx.Client, stack, ws: str, dataset_id: str) -> None:
    h = {**stack.console, "X-Workspace-Id": ws}
    docs: list = []
    for _ in range(240):
        docs = http.get(f"{stack.gateway_url}/v1/datasets/{dataset_id}/documents", headers=h).json()["data"]
        if docs and all(d["indexing_status"] in ("completed", "error") for d in docs):
            break
        time.sleep(0.5)
    assert docs and all(d["indexing_status"] == "completed" for d in docs), docs


def test_customer_service_template_installs_and_hands_off_an_angry_customer(stack, scripted_model) -> None:
    with stack.http() as http:
        app = install_template(stack, http, "customer-service", workspace="cs-template", scripted=scripted_model,
                               body={"env": {"COMPANY": "Acme"}})
        ws, faq, h = app.workspace_id, app.datasets["faq"], app.auth
        _wait_indexed(http, stack, ws, faq)

        def chat(query: str, conversation_id: str = "") -> dict:
            r = http.post(f"{stack.gateway_url}/v1/chat-messages", headers=h, timeout=180, json={
                "inputs": {}, "query": query, "user": "cust-1", "response_mode": "blocking",
                "conversation_id": conversation_id})
            assert r.status_code == 200, r.text
            return r.json()

        def variables(conversation_id: str) -> dict:
            body = http.get(f"{stack.gateway_url}/v1/conversations/{conversation_id}/variables",
                            params={"user": "cust-1"}, headers=h).json()
            # Dify's shape: each value as text ("true", "angry").
            return {v["name"]: str(v["value"]).lower() for v in body["data"]}

        # A calm FAQ question: answered by the LLM node, with the FAQ retrieved into its prompt.
        first = chat("How long does standard shipping take?")
        conv = first["conversation_id"]
        assert first["answer"] == ANSWER
        system = _answering_prompts(scripted_model)[-1][0]["content"]
        assert "business days" in system and "Acme" in system  # the FAQ's text, the install's env
        assert variables(conv)["handoff"] == "false"
        # Second turn: the first is in the prompt (memory).
        chat("And what is the return policy?", conv)
        prompt = _answering_prompts(scripted_model)[-1]
        contents = [m["content"] for m in prompt]
        assert "How long does standard shipping take?" in contents and ANSWER in contents
        assert "30 days" in prompt[0]["content"]

        # The FAQ updated through the knowledge API: the next turn retrieves the new text (the
        # app names the dataset, not its contents: nothing is redeployed).
        dh = {**stack.console, "X-Workspace-Id": ws}
        kb = f"{stack.gateway_url}/v1/datasets/{faq}"
        [doc] = http.get(f"{kb}/documents", headers=dh).json()["data"]
        r = http.post(f"{kb}/documents/{doc['id']}/update-by-text", headers=dh, timeout=60, json={
            "text": "## What does the warranty cover?\nEvery product carries a seven-year platinum warranty."})
        assert r.status_code == 200, r.text
        for _ in range(240):
            hits = http.post(f"{kb}/retrieve", json={"query": "warranty"}, headers=dh).json()["records"]
            if any("platinum" in h["segment"]["content"] for h in hits):
                break
            time.sleep(0.5)
        chat("What does the warranty cover?", conv)
        assert "seven-year platinum warranty" in _answering_prompts(scripted_model)[-1][0]["content"]
        answered = len(_answering_prompts(scripted_model))

        # An angry message: the lexicon labels it angry, the conversation is handed off, the fixed
        # handoff answer is given without asking the model, and the turn pauses for an agent.
        angry = chat("My parcel arrived broken and nobody answers. This is ridiculous, I am furious!", conv)
        assert angry["answer"] != ANSWER and angry["status"] == "paused"
        [ticket] = asyncio.run(_tickets(stack, ws))
        assert ticket["priority"] == "high" and ticket["category"] == "complaint" and ticket["customer"] == "cust-1"
        assert ticket["status"] == "open" and str(ticket["id"]) in angry["answer"]
        assert len(_answering_prompts(scripted_model)) == answered
        # The agent answers through the API: the reply is what the customer reads after the notice.
        final = _agent_replies(http, stack, h, angry, "Sorry! A new parcel is on its way today.")
        assert final.startswith(angry["answer"]) and final.endswith("Sorry! A new parcel is on its way today.")
        assert len(_answering_prompts(scripted_model)) == answered  # still no model answer
        state = variables(conv)
        assert state["handoff"] == "true" and state["handoff_reason"] == "angry" and state["last_emotion"] == "angry"

        # While the agent has it, the bot stays out: a fixed answer, no model call, no new ticket,
        # and the turn waits for the agent, who answers and gives the conversation back.
        prompts = len(scripted_model.prompts)
        waiting = chat("Hello? Anyone there?", conv)
        assert waiting["answer"] != angry["answer"] and len(scripted_model.prompts) == prompts
        assert len(asyncio.run(_tickets(stack, ws))) == 1
        final = _agent_replies(http, stack, h, waiting, "Done, anything else?", action="resolve")
        assert final.endswith("Done, anything else?") and len(scripted_model.prompts) == prompts
        assert variables(conv)["handoff"] == "false"
        assert chat("Thanks. Do you ship abroad?", conv)["answer"] == ANSWER

        # A calm request for a person: the classifier's class hands off a new conversation.
        asked = chat("Can I talk to a person please?")
        tickets = asyncio.run(_tickets(stack, ws))
        assert [t["priority"] for t in tickets] == ["high", "normal"]
        assert str(tickets[1]["id"]) in asked["answer"]
        assert _agent_replies(http, stack, h, asked, "Hi, I am Sam. How can I help?").endswith("How can I help?")
        state = variables(asked["conversation_id"])
        assert state["handoff"] == "true" and state["handoff_reason"] == "asked"
        assert state["last_emotion"] in ("neutral", "positive")


def test_customer_service_template_on_the_bundled_model_hands_off_an_angry_customer(stack) -> None:
    """The second pass, on the real bundled model (a base model: structure only). The handoff
    holds whatever its classifier picks: the lexicon flags the anger, or the model's class
    `human` does; either way the conversation is flagged and one ticket is opened."""
    with stack.http() as http:
        app = install_template(stack, http, "customer-service", workspace="cs-bundled")
        ws, h = app.workspace_id, app.auth
        draft = http.get(f"{app.base}/apps/{app.app_id}/draft", headers=stack.console).json()["dsl"]
        models = {n["data"]["model"]["name"] for n in draft["workflow"]["graph"]["nodes"] if "model" in n["data"]}
        assert models and "{{" not in "".join(models)  # the workspace's chat model filled in
        r = http.post(f"{stack.gateway_url}/v1/chat-messages", headers=h, timeout=240, json={
            "inputs": {}, "user": "cust-2", "response_mode": "blocking",
            "query": "My parcel arrived broken and nobody answers. This is ridiculous, I am furious!"})
        assert r.status_code == 200, r.text
        conv = r.json()["conversation_id"]
        _agent_replies(http, stack, h, {**r.json(), "_user": "cust-2"}, "A human agent here.")
        body = http.get(f"{stack.gateway_url}/v1/conversations/{conv}/variables", params={"user": "cust-2"},
                        headers=h).json()
        state = {v["name"]: str(v["value"]).lower() for v in body["data"]}
        assert state["handoff"] == "true" and state["last_emotion"] == "angry"
        assert state["handoff_reason"] in ("angry", "asked")
        [ticket] = asyncio.run(_tickets(stack, ws))
        assert ticket["customer"] == "cust-2" and str(ticket["id"]) in r.json()["answer"]
