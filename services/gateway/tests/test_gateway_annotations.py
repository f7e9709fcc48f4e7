"""Annotations (Dify's annotation reply) on the gateway's side, in process (real NATS and
Postgres; the scripted orchestrator; a bag-of-words embedder in place of inference's Embed):
CRUD with pagination and keyword, enable/disable with its job status, the match that puts the
annotation on the run request (and not below the threshold), hit counts, bad input naming the
field, console RBAC, and another workspace's or app's annotations out of reach.

The real stack (the bundled embedding model, the real orchestrator, no Generate call):
test_gateway_e2e_annotations.py."""

from __future__ import annotations

import hashlib

import numpy as np
from gateway_testkit import make_app

from loom_common.testing import eventually


class WordsEmbedder:
    """Deterministic: a normalised bag of hashed lowercase words (same words, same vector)."""

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, model: str, inputs: list[str], tenant_id: str):
        self.calls += 1
        out = []
        for text in inputs:
            v = np.zeros(64, dtype=np.float32)
            for w in text.lower().replace("?", " ").split():
                v[int(hashlib.sha256(w.encode()).hexdigest(), 16) % 64] += 1
            out.append((v / (np.linalg.norm(v) or 1)).tolist())
        return model, out, 0


def _fake_embedder(gateway) -> WordsEmbedder:
    e = WordsEmbedder()
    gateway.rt.http.state.gw.annotations.embedder = e
    return e


async def test_annotation_crud_pages_keyword_and_bad_input(gateway, admin) -> None:
    c = gateway.client
    _, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    ids = []
    for i in range(3):
        r = await c.post("/v1/apps/annotations", json={"question": f"question {i} about tea",
                                                       "answer": f"answer {i}"}, headers=h)
        assert r.status_code == 200, r.text
        assert set(r.json()) == {"id", "question", "answer", "hit_count", "created_at"}
        ids.append(r.json()["id"])
    page = (await c.get("/v1/apps/annotations", params={"page": 1, "limit": 2}, headers=h)).json()
    assert page["total"] == 3 and page["has_more"] and len(page["data"]) == 2 and page["page"] == 1
    found = (await c.get("/v1/apps/annotations", params={"keyword": "question 1"}, headers=h)).json()
    assert [a["id"] for a in found["data"]] == [ids[1]]
    assert (await c.get("/v1/apps/annotations", params={"keyword": "%"}, headers=h)).json()["total"] == 0

    r = await c.put(f"/v1/apps/annotations/{ids[0]}", json={"question": "green tea?", "answer": "yes"}, headers=h)
    assert r.status_code == 200 and r.json()["question"] == "green tea?"
    assert (await c.delete(f"/v1/apps/annotations/{ids[2]}", headers=h)).status_code == 204
    assert (await c.delete(f"/v1/apps/annotations/{ids[2]}", headers=h)).status_code == 404

    bad = await c.post("/v1/apps/annotations", json={"answer": "no question"}, headers=h)
    assert bad.status_code == 400 and bad.json()["field"] == "question"
    bad = await c.post("/v1/apps/annotations", json={"question": "q", "answer": "a" * 10_001}, headers=h)
    assert bad.status_code == 400 and bad.json()["field"] == "answer"
    bad = await c.post("/v1/apps/annotation-reply/enable", json={"score_threshold": 1.5,
                                                                 "embedding_model_name": "m"}, headers=h)
    assert bad.status_code == 400 and bad.json()["field"] == "score_threshold"
    bad = await c.post("/v1/apps/annotation-reply/enable", json={"embedding_model_name": "m"}, headers=h)
    assert bad.status_code == 400 and bad.json()["field"] == "score_threshold"
    bad = await c.post("/v1/apps/annotation-reply/reboot", json={}, headers=h)
    assert bad.status_code == 400 and bad.json()["field"] == "action"


async def test_a_close_query_carries_the_annotation_and_a_far_one_does_not(gateway, admin, orchestrator) -> None:
    c = gateway.client
    embedder = _fake_embedder(gateway)
    app_id, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    ann = (await c.post("/v1/apps/annotations", json={"question": "How do I reset my password?",
                                                      "answer": "Use the Forgot password link."}, headers=h)).json()
    job = await c.post("/v1/apps/annotation-reply/enable", json={"score_threshold": 0.9,
                                                                 "embedding_provider_name": "loom",
                                                                 "embedding_model_name": "words"}, headers=h)
    assert job.status_code == 200 and job.json()["job_status"] == "completed", job.text
    status = await c.get(f"/v1/apps/annotation-reply/enable/status/{job.json()['job_id']}", headers=h)
    assert status.json() == {"job_id": job.json()["job_id"], "job_status": "completed", "error_msg": ""}
    assert (await c.get(f"/v1/apps/annotation-reply/disable/status/{job.json()['job_id']}",
                        headers=h)).status_code == 404
    setting = (await c.get(admin.ws(f"/apps/{app_id}/annotation-setting"), headers=admin.headers)).json()
    assert setting["enabled"] and setting["score_threshold"] == 0.9

    r = await c.post("/v1/chat-messages", json={"query": "how do I reset my password", "user": "u1",
                                                "response_mode": "blocking"}, headers=h)
    assert r.status_code == 200, r.text
    message_id = r.json()["message_id"]
    far = await c.post("/v1/chat-messages", json={"query": "what is the weather in Oslo", "user": "u1",
                                                  "response_mode": "blocking"}, headers=h)
    assert far.status_code == 200
    await eventually(lambda: len(orchestrator.requests) == 2, "both run requests")
    near, other = orchestrator.requests
    assert near.annotation_reply is not None and near.annotation_reply.id == ann["id"]
    assert near.annotation_reply.answer == "Use the Forgot password link." and near.annotation_reply.score >= 0.9
    assert other.annotation_reply is None
    listed = (await c.get("/v1/apps/annotations", headers=h)).json()["data"]
    assert listed[0]["hit_count"] == 1
    hits = (await c.get(admin.ws(f"/apps/{app_id}/annotations/{ann['id']}/hit-histories"),
                        headers=admin.headers)).json()
    assert [x["message_id"] for x in hits["data"]] == [message_id]

    # The console's debugger answers from annotations too.
    r = await c.post(admin.ws(f"/apps/{app_id}/draft/run"), json={"inputs": {}, "query": "how do I reset my password"},
                     headers=admin.headers)
    assert r.status_code == 200, r.text
    await eventually(lambda: len(orchestrator.requests) == 3, "the debugger's run request")
    assert orchestrator.requests[2].annotation_reply.id == ann["id"]
    orchestrator.requests.pop()

    # An annotation added while the reply is on is searchable at once; disabled, none is matched.
    calls = embedder.calls
    await c.post("/v1/apps/annotations", json={"question": "Where is the office?", "answer": "Oslo."}, headers=h)
    assert embedder.calls == calls + 1
    assert (await c.post("/v1/apps/annotation-reply/disable", json={}, headers=h)).json()["job_status"] == "completed"
    await c.post("/v1/chat-messages", json={"query": "how do I reset my password", "user": "u1",
                                            "response_mode": "blocking"}, headers=h)
    await eventually(lambda: len(orchestrator.requests) == 3, "the third run request")
    assert orchestrator.requests[2].annotation_reply is None


async def test_annotations_stay_in_their_app_and_workspace(gateway, admin) -> None:
    c = gateway.client
    app_a, key_a = await make_app(c, admin, "chat", "a")
    _, key_b = await make_app(c, admin, "chat", "b")
    ha, hb = {"Authorization": f"Bearer {key_a}"}, {"Authorization": f"Bearer {key_b}"}
    ann = (await c.post("/v1/apps/annotations", json={"question": "q", "answer": "a"}, headers=ha)).json()
    assert (await c.get("/v1/apps/annotations", headers=hb)).json()["total"] == 0
    assert (await c.put(f"/v1/apps/annotations/{ann['id']}", json={"question": "x", "answer": "y"},
                        headers=hb)).status_code == 404
    assert (await c.delete(f"/v1/apps/annotations/{ann['id']}", headers=hb)).status_code == 404

    # The console: through its app, only in its workspace, and writes need apps.write.
    r = await c.get(admin.ws(f"/apps/{app_a}/annotations"), headers=admin.headers)
    assert r.status_code == 200 and r.json()["data"][0]["id"] == ann["id"]
    other = (await c.post("/console/api/workspaces", json={"name": "B"}, headers=admin.headers)).json()["id"]
    r = await c.get(f"/console/api/workspaces/{other}/apps/{app_a}/annotations", headers=admin.headers)
    assert r.status_code == 404
    r = await c.delete(f"/console/api/workspaces/{other}/apps/{app_a}/annotations/{ann['id']}",
                       headers=admin.headers)
    assert r.status_code == 404
    assert (await c.get("/v1/apps/annotations", headers=ha)).json()["total"] == 1
    dataset_key = (await c.post(admin.ws("/dataset-api-keys"), headers=admin.headers)).json()["token"]
    r = await c.get("/v1/apps/annotations", headers={"Authorization": f"Bearer {dataset_key}"})
    assert r.status_code == 403


async def test_an_app_without_reply_is_remembered_briefly_and_an_enable_applies_at_once(gateway, admin,
                                                                                      orchestrator) -> None:
    """Every chat asks for a match; an app with the reply off is not looked up again for
    REPLY_OFF_CACHE_S (a round trip per chat run), and enabling it through this gateway is seen
    by the very next chat."""
    c = gateway.client
    _fake_embedder(gateway)
    annotations = gateway.rt.http.state.gw.annotations
    app_id, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    ann = (await c.post("/v1/apps/annotations", json={"question": "Where is the office?", "answer": "Oslo."},
                        headers=h)).json()
    chat = {"query": "where is the office", "user": "u1", "response_mode": "blocking"}
    assert (await c.post("/v1/chat-messages", json=chat, headers=h)).status_code == 200
    assert [k for k in annotations._reply_off if k[1] == app_id]  # remembered: reply off
    job = await c.post("/v1/apps/annotation-reply/enable", json={"score_threshold": 0.9,
                                                                 "embedding_provider_name": "loom",
                                                                 "embedding_model_name": "words"}, headers=h)
    assert job.json()["job_status"] == "completed", job.text
    assert (await c.post("/v1/chat-messages", json=chat, headers=h)).status_code == 200
    await eventually(lambda: len(orchestrator.requests) == 2, "both run requests")
    off, on = orchestrator.requests
    assert off.annotation_reply is None and on.annotation_reply is not None and on.annotation_reply.id == ann["id"]
