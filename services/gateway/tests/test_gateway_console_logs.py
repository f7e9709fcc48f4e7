"""An app's logs through the console API: every end user's conversations (filters: keyword, end
user, feedback) and a conversation's messages with the feedback end users gave through the
service API; scoped to the workspace and app; refused to a role without runs.read. Real NATS and
Postgres, a scripted stand-in for the orchestrator."""

from __future__ import annotations

import pytest
from gateway_testkit import make_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def _chat(c, key: str, user: str, query: str, conversation_id: str = "") -> dict:
    r = await c.post("/v1/chat-messages", json={"inputs": {}, "query": query, "user": user,
                                                "response_mode": "blocking", "conversation_id": conversation_id},
                     headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.json()


async def test_conversations_with_filters_and_messages_with_feedback(gateway, admin, orchestrator) -> None:
    c = gateway.client
    app_id, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    first = await _chat(c, key, "alice", "tell me about 100% rye_bread")
    second = await _chat(c, key, "alice", "and oats?", first["conversation_id"])
    other = await _chat(c, key, "bob", "weather today")
    assert (await c.post(f"/v1/messages/{second['message_id']}/feedbacks",
                         json={"rating": "like", "user": "alice", "content": "spot on"}, headers=h)).status_code == 200
    assert (await c.post(f"/v1/messages/{other['message_id']}/feedbacks",
                         json={"rating": "dislike", "user": "bob"}, headers=h)).status_code == 200

    url = admin.ws(f"/apps/{app_id}/conversations")

    async def listed(**params) -> list[str]:
        r = await c.get(url, params=params, headers=admin.headers)
        assert r.status_code == 200, r.text
        return [x["end_user"] for x in r.json()["data"]]

    everything = (await c.get(url, headers=admin.headers)).json()
    assert everything["total"] == 2 and everything["has_more"] is False
    rows = {x["end_user"]: x for x in everything["data"]}
    assert (rows["alice"]["message_count"], rows["alice"]["likes"], rows["alice"]["dislikes"]) == (2, 1, 0)
    assert (rows["bob"]["message_count"], rows["bob"]["likes"], rows["bob"]["dislikes"]) == (1, 0, 1)
    assert await listed(feedback="like") == ["alice"]
    assert await listed(feedback="dislike") == ["bob"]
    assert sorted(await listed(feedback="any")) == ["alice", "bob"]
    assert await listed(user="bob") == ["bob"]
    assert await listed(keyword="OATS") == ["alice"]           # a later query, any case
    assert await listed(keyword="100% rye_") == ["alice"]      # % and _ are literal
    assert await listed(keyword="1%0") == []
    page2 = (await c.get(url, params={"limit": 1, "page": 2}, headers=admin.headers)).json()
    assert len(page2["data"]) == 1 and page2["total"] == 2 and page2["has_more"] is False
    past = (await c.get(url, params={"limit": 1, "page": 9}, headers=admin.headers)).json()
    assert past["data"] == [] and past["total"] == 2
    for bad, field in (({"feedback": "meh"}, "feedback"), ({"limit": 0}, "limit"), ({"keyword": "k" * 201}, "keyword")):
        r = await c.get(url, params=bad, headers=admin.headers)
        assert r.status_code == 400 and r.json()["field"] == field, r.text

    r = await c.get(f"{url}/{first['conversation_id']}/messages", headers=admin.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["conversation"]["end_user"] == "alice"
    assert [m["query"] for m in body["data"]] == ["tell me about 100% rye_bread", "and oats?"]
    assert [m["feedback"] for m in body["data"]] == [None, {"rating": "like", "content": "spot on"}]
    assert all(m["run_id"] and m["answer"] == "tok0 tok1 tok2 " for m in body["data"])

    # Another app's id, or a conversation of another app: 404.
    other_app, _ = await make_app(c, admin, "chat", name="other")
    r = await c.get(admin.ws(f"/apps/{other_app}/conversations/{first['conversation_id']}/messages"),
                    headers=admin.headers)
    assert r.status_code == 404
    assert (await c.get(admin.ws(f"/apps/{other_app}/conversations"), headers=admin.headers)).json()["data"] == []
    assert (await c.get(admin.ws("/apps/no-such-app/conversations"), headers=admin.headers)).status_code == 404

    # A normal member (no runs.read) is refused.
    inv = await c.post(admin.ws("/invitations"), json={"email": "nora@example.com", "role": "normal"},
                       headers=admin.headers)
    joined = await c.post("/console/api/invitations/accept", json={"token": inv.json()["token"], "name": "Nora",
                                                                   "password": "correct horse battery"})
    nora = {"Authorization": f"Bearer {joined.json()['access_token']}"}
    r = await c.get(url, headers=nora)
    assert r.status_code == 403 and "runs.read" in r.json()["message"]
