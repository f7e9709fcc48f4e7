"""The gateway SIGKILLed in the middle of a streaming chat (docs/reliability.md): the client
reconnects to the restarted gateway with `Last-Event-ID` and gets every event once, in order.

Real processes (gateway, orchestrator) on a NATS server of this test's own and a database of its
own; the model is a gRPC stand-in in this process that streams one token and then holds until
the test releases it, so the kill lands mid-stream."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from gateway_stack import Stack, _sign_in, app_with_key

from loom_common.db import _with_database
from loom_common.devstack import infra
from loom_orchestrator.testkit import serve_held_model

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

CHAT = {"nodes": [
    {"id": "start", "data": {"type": "start"}},
    {"id": "llm", "data": {"type": "llm", "model": {"name": "fake"},
                           "prompt_template": [{"role": "user", "text": "{{#sys.query#}}"}]}},
    {"id": "ans", "data": {"type": "answer", "answer": "{{#llm.text#}}"}}],
    "edges": [{"source": "start", "target": "llm"}, {"source": "llm", "target": "ans"}]}


@pytest.fixture
def own_nats(tmp_path):
    server = infra.EmbeddedNats(tmp_path / "nats").start()
    yield server
    server.stop()


async def _sse(lines, events: list[tuple[int, dict]], until: str | None = None) -> None:
    """Collect (id, data) of each run event of an SSE stream (pings have no id)."""
    seq = None
    async for line in lines:
        if line.startswith("id: "):
            seq = int(line[4:])
        elif line.startswith("data: ") and seq is not None:
            data = json.loads(line[6:])
            events.append((seq, data))
            seq = None
            if until is not None and data["event"] == until:
                return


async def test_gateway_killed_mid_stream_the_client_resumes_with_last_event_id(
        own_nats, database_url, run_service) -> None:
    db = _with_database(database_url, f"faults_{uuid.uuid4().hex[:10]}")
    async with serve_held_model() as model:
        env = {"LOOM_NATS_URL": own_nats.url, "LOOM_DATABASE_URL": db, "LOOM_INFERENCE_ADDR": model.addr}
        run_service("orchestrator", env=env)
        port, admin = infra.free_port(), infra.free_port()
        gateway_env = {**env, "LOOM_GATEWAY_ADMIN_PORT": str(admin)}
        gateway = run_service("gateway", env=gateway_env, http_port=port)
        stack = Stack(gateway_url=gateway.base_url, inference_addr=model.addr)
        _sign_in(stack)
        _, key = app_with_key(stack, "chatflow", CHAT)
        headers = {"Authorization": f"Bearer {key}"}
        before: list[tuple[int, dict]] = []
        async with httpx.AsyncClient(base_url=f"{gateway.base_url}/v1", headers=headers, timeout=60) as http:
            async with http.stream("POST", "/chat-messages", json={"inputs": {}, "query": "hi", "user": "u",
                                                                   "response_mode": "streaming"}) as r:
                assert r.status_code == 200, await r.aread()
                lines = r.aiter_lines()
                await _sse(lines, before, until="message")  # the first token: mid-stream
                gateway.kill()  # SIGKILL, the stream open
                killed = time.monotonic()
                with pytest.raises(httpx.HTTPError):  # the client sees its stream break
                    await _sse(lines, before)
        model.release.set()  # the run goes on without the gateway
        restarted = run_service("gateway", env=gateway_env, http_port=port)
        task_id, last = before[0][1]["task_id"], before[-1][0]
        after: list[tuple[int, dict]] = []
        async with httpx.AsyncClient(base_url=f"{restarted.base_url}/v1", headers=headers, timeout=60) as http:
            async with http.stream("GET", f"/runs/{task_id}/events", headers={"Last-Event-ID": str(last)}) as r:
                assert r.status_code == 200, await r.aread()
                await _sse(r.aiter_lines(), after, until="message_end")
        print(f"recovery_s={time.monotonic() - killed:.2f} (gateway SIGKILL -> the resumed stream's message_end, "
              f"the gateway's restart included)")
    seqs = [s for s, _ in before + after]
    assert seqs == list(range(1, len(seqs) + 1)), f"every event once, in order: {seqs}"
    names = [d["event"] for _, d in before + after]
    assert names.count("message_end") == 1 and names[-1] == "message_end"
    answer = "".join(d["answer"] for _, d in before + after if d["event"] == "message")
    assert answer == "call1 done" and model.calls == 1  # the run was not disturbed
    assert restarted.proc.poll() is None
