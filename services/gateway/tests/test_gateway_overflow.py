"""Overflow on the real stack (own NATS, every service a process, inference's fake route: the
real engine, no model): with the queues configured small, requests past them are refused at once
with 503/429 and Retry-After; the rest are answered in full; nobody waits out a timeout.

- orchestrator slots (LOOM_ORCHESTRATOR_MAX_CONCURRENT_RUNS=2) with the gateway's run-queue
  bound (LOOM_GATEWAY_MAX_QUEUED_RUNS=3): a burst of streaming chats is split into streams that
  end with `message_end` and 503 `overloaded` refusals that leave no run recorded;
- the engine's queue (performance.max_parallel=1, max_waiting=1): the OpenAI-compatible route
  answers a burst with 200s and 429 `too_many_requests` with Retry-After.

Counts only (no wall-clock bounds): every request ends as one of the two outcomes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter

import asyncpg
import httpx
import pytest

from loom_common.db import _with_database
from loom_common.devstack import infra

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BURST = 24
FAKE_GRAPH = {"nodes": [
    {"id": "start", "data": {"type": "start"}},
    {"id": "llm", "data": {"type": "llm", "model": {"name": "fake", "completion_params": {"max_tokens": 60}},
                           "prompt_template": [{"role": "user", "text": "{{#sys.query#}}"}]}},
    {"id": "ans", "data": {"type": "answer", "answer": "{{#llm.text#}}"}}],
    "edges": [{"source": "start", "target": "llm"}, {"source": "llm", "target": "ans"}]}


@pytest.fixture(scope="module")
def small_stack(database_url, tmp_path_factory):
    from gateway_stack import app_with_key, start_stack

    root = tmp_path_factory.mktemp("overflow")
    nats = infra.EmbeddedNats(root / "nats").start()  # its own: the run queue's depth is this test's alone
    config = root / "inference.toml"
    # One sequence decoding, one waiting; each token a 0.05 s step, so a 60-token answer holds
    # its orchestrator slot (3 s or more) while the burst arrives.
    config.write_text("[performance]\nmax_parallel = 1\nmax_waiting = 1\n\n"
                      '[[models]]\nname = "fake"\nbackend = "fake"\nparameters = { step_delay_s = 0.05 }\n')
    db = _with_database(database_url, f"overflow_{uuid.uuid4().hex[:10]}")
    try:
        stack = start_stack(nats.url, db, root / "home",
                            gateway_env={"LOOM_GATEWAY_MAX_QUEUED_RUNS": "3", "LOOM_GATEWAY_KEY_RPM": "0",
                                         "LOOM_GATEWAY_WORKSPACE_RPM": "0"},
                            inference_env={"LOOM_INFERENCE_CONFIG": str(config),
                                           "LOOM_INFERENCE_LOAD_MODELS_AT_START": "false"},
                            service_env={"LOOM_ORCHESTRATOR_MAX_CONCURRENT_RUNS": "2"})
    except BaseException:
        nats.stop()
        raise
    try:
        _, key = app_with_key(stack, "chatflow", FAKE_GRAPH, name="overflow")
        yield stack, key, db
    finally:
        stack.stop()
        nats.stop()


async def _stream(client: httpx.AsyncClient, key: str, n: int) -> tuple[str, dict]:
    """One streaming chat -> ("answered", ...) | ("refused", status, Retry-After, body) | ("other", ...)."""
    async with client.stream("POST", "/v1/chat-messages", headers={"Authorization": f"Bearer {key}"},
                             json={"inputs": {}, "query": f"hello {n}", "user": f"u{n}",
                                   "response_mode": "streaming"}) as r:
        if r.status_code != 200:
            body = json.loads(await r.aread())
            return ("refused" if r.status_code == 503 else "other"), {
                "status": r.status_code, "retry_after": r.headers.get("retry-after"), "body": body}
        events = [json.loads(line[6:]) async for line in r.aiter_lines() if line.startswith("data: ")]
    kinds = [e["event"] for e in events]
    ok = kinds.count("message_end") == 1 and "error" not in kinds and "message" in kinds
    return ("answered" if ok else "other"), {"events": kinds, "task_id": events[0].get("task_id") if events else None}


async def test_a_burst_past_the_run_queue_is_refused_with_503_and_retry_after(small_stack) -> None:
    stack, key, db = small_stack
    # A client timeout far past any answer here: reaching it would be the timeout storm this forbids.
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as client:
        outcomes = await asyncio.gather(*(_stream(client, key, n) for n in range(BURST)))
        count = Counter(kind for kind, _ in outcomes)
        print(f"burst of {BURST}: {dict(count)}")
        assert count["other"] == 0, [o for o in outcomes if o[0] == "other"]
        assert count["answered"] >= 2 and count["refused"] >= 1, count  # two slots, a queue of three
        for kind, detail in outcomes:
            if kind == "refused":
                assert detail["body"]["code"] == "overloaded" and int(detail["retry_after"]) >= 1, detail
        # A refused run left nothing behind: the runs recorded are exactly those answered.
        conn = await asyncpg.connect(db)
        try:
            statuses = Counter(r["status"] for r in await conn.fetch("SELECT status FROM gateway.runs"))
        finally:
            await conn.close()
        assert statuses == {"succeeded": count["answered"]}, statuses
        # Once the queue has drained, the next request is served.
        assert (await _stream(client, key, BURST))[0] == "answered"


async def test_a_burst_past_the_engine_queue_gets_429_with_retry_after(small_stack) -> None:
    stack, key, _ = small_stack
    headers = {"Authorization": f"Bearer {key}"}

    async def complete(n: int) -> tuple[int, str | None, dict]:
        r = await client.post("/v1/chat/completions", headers=headers, json={
            "model": "fake", "max_tokens": 100, "messages": [{"role": "user", "content": f"hi {n}"}]})
        return r.status_code, r.headers.get("retry-after"), r.json()

    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as client:
        results = await asyncio.gather(*(complete(n) for n in range(8)))
    codes = Counter(status for status, _, _ in results)
    print(f"burst of 8 on the engine: {dict(codes)}")
    assert set(codes) <= {200, 429} and codes[200] >= 1 and codes[429] >= 1, results
    for status, retry_after, body in results:
        if status == 429:
            assert body["code"] == "too_many_requests" and int(retry_after) >= 1, body
        else:
            assert body["choices"][0]["message"]["content"], body
