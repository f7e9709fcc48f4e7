"""The `ollama` Python client, unchanged, against the real service on the real model:
chat, generate, embed, list, show, ps, pull (from a loopback registry) and delete."""

from __future__ import annotations

import json

import httpx
import ollama
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_inference_ollama_client_works_unchanged(inference_service, model_server) -> None:
    client = ollama.Client(host=inference_service.base_url)
    opts = {"temperature": 0, "num_predict": 8}

    chat = client.chat(model="gemma3:270m", messages=[{"role": "user", "content": "Hi"}], options=opts)
    assert chat.done and chat.message.role == "assistant" and chat.eval_count > 0
    assert chat.prompt_eval_count > 0 and chat.total_duration > 0 and chat.done_reason in ("stop", "length")

    parts = list(client.generate(model="gemma3:270m", prompt="Once upon a time", options=opts, stream=True))
    assert parts[-1].done and not any(p.done for p in parts[:-1]) and parts[-1].eval_duration > 0

    emb = client.embed(model="all-minilm:l6-v2", input=["hello", "world"])
    assert len(emb.embeddings) == 2 and len(emb.embeddings[0]) == 384

    names = [m.model for m in client.list().models]
    assert "gemma3:270m" in names and "all-minilm:l6-v2" in names
    shown = client.show("gemma3:270m")
    assert shown.details.family == "gemma3" and "completion" in shown.capabilities
    assert any(m.model == "gemma3:270m" for m in client.ps().models)

    # pull from the loopback Ollama-style registry, with the progress stream
    progress = list(client.pull("tiny", stream=True))
    statuses = [p.status for p in progress]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert "verifying sha256 digest" in statuses
    assert any(p.completed == p.total == len(model_server.blob) for p in progress if p.total)
    assert "tiny:latest" in [m.model for m in client.list().models]
    client.delete("tiny:latest")
    assert "tiny:latest" not in [m.model for m in client.list().models]

    # JSON-schema constrained output through Ollama's `format`
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
              "required": ["city"]}
    out = client.chat(model="gemma3:270m", messages=[{"role": "user", "content": "Where?"}], format=schema,
                      options={"temperature": 0, "num_predict": 40})
    assert isinstance(json.loads(out.message.content)["city"], str)

    # errors are typed 4xx with a JSON body
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="nope:1b", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 404
    bad = httpx.post(inference_service.base_url + "/api/chat", json={"model": "gemma3:270m", "messages": "x"})
    assert bad.status_code == 400 and bad.json()["field"].startswith("messages")


def test_inference_curl_style_bodies_are_json_as_in_ollama(inference_service) -> None:
    """Ollama's docs call the API with `curl URL -d '{...}'`, whose Content-Type is a form's: the
    body is JSON all the same (a blob upload keeps its raw bytes)."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = json.dumps({"model": "gemma3:270m", "prompt": "Hi", "stream": False,
                       "options": {"temperature": 0, "num_predict": 4}})
    r = httpx.post(f"{inference_service.base_url}/api/generate", content=body, headers=form, timeout=120)
    assert r.status_code == 200 and r.json()["done"] is True, r.text
    r = httpx.post(f"{inference_service.base_url}/api/show", content=json.dumps({"model": "gemma3:270m"}),
                   timeout=30)  # no Content-Type at all
    assert r.status_code == 200 and r.json()["details"]["family"], r.text
    r = httpx.post(f"{inference_service.base_url}/api/generate", content=b"not json", headers=form, timeout=30)
    assert r.status_code == 400 and "error" in r.json(), r.text
