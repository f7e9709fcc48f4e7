"""The whole stack on TLS (every service with a certificate from a local CA, every internal gRPC
hop verified against it) with the gateway on Granian: HTTP/2 over TLS and h2c, Dify's SSE
chat stream over both, TLS 1.3 negotiated and a TLS 1.2-only client refused on the gateway and
on the model API (inference's Ollama/OpenAI port). Real processes, real loopback sockets."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid

import httpx
import pytest
from gateway_stack import app_with_key, start_stack

from loom_common.db import _with_database
from loom_common.devstack import certs, infra
from loom_common.testing import ServiceProcess, tls_handshake
from loom_common.tls import client_context

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# No model needed: start -> template -> answer streams its text as `message` events.
FLOW = {
    "nodes": [
        {"id": "start", "data": {"type": "start"}},
        {"id": "t", "data": {"type": "template-transform", "template": "echo {{ q }}",
                             "variables": [{"variable": "q", "value_selector": ["sys", "query"]}]}},
        {"id": "ans", "data": {"type": "answer", "answer": "{{#t.output#}}"}},
    ],
    "edges": [{"source": "start", "target": "t"}, {"source": "t", "target": "ans"}],
}


@pytest.fixture(scope="module")
def tls_stack(database_url, tmp_path_factory):
    home = tmp_path_factory.mktemp("tls-stack")
    cert = certs.ensure_server_cert(home / "tls", "loom")
    nats = infra.EmbeddedNats(home / "nats").start()
    try:
        stack = start_stack(nats.url, _with_database(database_url, f"h2_{uuid.uuid4().hex[:10]}"), home,
                            service_env=cert.env(), gateway_env={"LOOM_GATEWAY_HTTP_SERVER": "granian"},
                            inference_env={"LOOM_INFERENCE_LOAD_MODELS_AT_START": "false"})
        try:
            yield stack, cert
        finally:
            stack.stop()
    finally:
        nats.stop()


@pytest.fixture(scope="module")
def h2c_gateway(tls_stack, tmp_path_factory):
    """A second gateway on the same stack, in the clear (h2c), its gRPC clients still on TLS."""
    stack, _ = tls_stack
    gateway = next(p for p in stack.procs if p.name == "gateway")
    port, admin = infra.free_port(), infra.free_port()
    env = {k: v for k, v in gateway.env.items() if k not in ("LOOM_TLS_CERT_FILE", "LOOM_TLS_KEY_FILE")}
    env |= {"LOOM_GATEWAY_HTTP_PORT": str(port), "LOOM_GATEWAY_ADMIN_PORT": str(admin)}
    proc = ServiceProcess("gateway", env, port, tmp_path_factory.mktemp("h2c") / "gateway.log", admin).start(120)
    yield proc
    proc.stop()


def test_gateway_and_model_api_negotiate_tls13_and_refuse_tls12(tls_stack) -> None:
    stack, cert = tls_stack
    procs = {p.name: p for p in stack.procs}
    for name in ("gateway", "inference"):  # the public API and the model API (Ollama/OpenAI port)
        port = procs[name].http_port
        version, alpn = tls_handshake(port, cert.ca_file, max_version=ssl.TLSVersion.TLSv1_3)
        assert version == "TLSv1.3", name
        assert alpn == ("h2" if name == "gateway" else "http/1.1"), name
        assert tls_handshake(port, cert.ca_file, max_version=ssl.TLSVersion.TLSv1_2)[0] == "refused", name
    # The model API answers over TLS to a verifying client.
    r = httpx.get(f"{procs['inference'].base_url}/api/tags", verify=client_context(cert.ca_file), timeout=30)
    assert r.status_code == 200 and "models" in r.json()


async def _chat_stream(client: httpx.AsyncClient, base_url: str, key: str, query: str) -> tuple[str, list[dict]]:
    async with client.stream("POST", f"{base_url}/v1/chat-messages", headers={"Authorization": f"Bearer {key}"},
                             json={"inputs": {}, "query": query, "user": "h2", "response_mode": "streaming"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) async for line in r.aiter_lines() if line.startswith("data: ")]
    return r.http_version, events


def _answer(events: list[dict]) -> str:
    return "".join(e.get("answer", "") for e in events if e["event"] == "message")


async def test_sse_chat_streams_over_http2_with_tls(tls_stack) -> None:
    stack, _ = tls_stack
    _, key = app_with_key(stack, "chatflow", FLOW, name="h2")
    async with httpx.AsyncClient(http2=True, verify=stack.verify, timeout=120) as client:
        # Three streams at once on one HTTP/2 connection (multiplexed), each with its own answer.
        results = await asyncio.gather(*(_chat_stream(client, stack.gateway_url, key, f"q{i}") for i in range(3)))
        # The gateway's gRPC client reaches inference over TLS (verified against the CA).
        models = await client.get(f"{stack.gateway_url}/v1/models", headers={"Authorization": f"Bearer {key}"})
    for i, (version, events) in enumerate(results):
        assert version == "HTTP/2"
        assert _answer(events) == f"echo q{i}"
        assert events[-1]["event"] in {"message_end", "workflow_finished"}
    assert models.status_code == 200 and models.json()["object"] == "list", models.text


async def test_sse_chat_streams_over_h2c(tls_stack, h2c_gateway) -> None:
    stack, _ = tls_stack
    _, key = app_with_key(stack, "chatflow", FLOW, name="h2c")
    assert h2c_gateway.base_url.startswith("http://")
    # Prior knowledge: HTTP/2 in the clear from the first byte (no Upgrade dance).
    async with httpx.AsyncClient(http1=False, http2=True, timeout=120) as client:
        version, events = await _chat_stream(client, h2c_gateway.base_url, key, "plain")
    assert version == "HTTP/2" and _answer(events) == "echo plain"
