"""End to end on the real stack (every service a process, real NATS, Postgres and gRPC): files
uploaded through the service API reach an llm node with `vision` on, read by the orchestrator from
the gateway's file store.

- a text file's content is inlined in the prompt the model gets (the scripted backend, an
  OpenAI-compatible loopback endpoint registered with the REAL inference service, records it);
- an image goes to that scripted model, registered as vision-capable, as an image part;
- the bundled gemma model cannot read images: the inference service refuses the image and the
  run's node trace names the file and the model (nothing is silently dropped).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json

import httpx
import pytest
from gateway_stack import app_with_key
from template_testkit import ScriptedModel

from loom_common.clients.inference import InferenceClient

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def _flow(model: str) -> dict:
    return {
        "nodes": [
            {"id": "start", "data": {"type": "start", "variables": []}},
            {"id": "llm", "data": {"type": "llm", "model": {"name": model,
                                                            "completion_params": {"max_tokens": 4, "temperature": 0}},
                                   "vision": {"enabled": True, "configs": {"variable_selector": ["sys", "files"],
                                                                           "detail": "high"}},
                                   "prompt_template": [{"role": "user", "text": "What do the files say?"}]}},
            {"id": "end", "data": {"type": "end", "outputs": [{"variable": "answer",
                                                               "value_selector": ["llm", "text"]}]}},
        ],
        "edges": [{"source": "start", "target": "llm"}, {"source": "llm", "target": "end"}],
    }


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 10)).save(buf, "PNG")
    return buf.getvalue()


def _upload(stack, key: str, name: str, data: bytes, mime: str) -> str:
    r = httpx.post(f"{stack.gateway_url}/v1/files/upload", files={"file": (name, data, mime)},
                   data={"user": "u1"}, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _run(stack, key: str, files: list[dict]) -> dict:
    r = httpx.post(f"{stack.gateway_url}/v1/workflows/run", json={"inputs": {}, "user": "u1", "files": files,
                                                                 "response_mode": "blocking"},
                   headers={"Authorization": f"Bearer {key}"}, timeout=240)
    assert r.status_code == 200, r.text
    return r.json()


async def _register_vision(stack, scripted: ScriptedModel) -> None:
    client = InferenceClient(stack.inference_addr, timeout_s=10.0)
    try:
        await client.register_remote(stack.workspace_id, scripted.name, "openai",
                                     f"http://127.0.0.1:{scripted.port}/v1", None, vision=True)
    finally:
        await client.close()


def test_a_text_file_and_an_image_reach_a_vision_models_prompt(stack) -> None:
    with ScriptedModel("scripted-vision", lambda messages: "seen") as scripted:
        asyncio.run(_register_vision(stack, scripted))
        _, key = app_with_key(stack, "workflow", _flow("scripted-vision"), name="files to a vision model")
        png = _png()
        text_id = _upload(stack, key, "notes.txt", b"Potassium 5.9 mmol/L (high)", "text/plain")
        image_id = _upload(stack, key, "scan.png", png, "image/png")
        out = _run(stack, key, [{"type": "document", "transfer_method": "local_file", "upload_file_id": text_id},
                                {"type": "image", "transfer_method": "local_file", "upload_file_id": image_id}])
        assert out["data"]["status"] == "succeeded", out
        assert out["data"]["outputs"] == {"answer": "seen"}
        user = scripted.prompts[-1][-1]
        assert user["role"] == "user"
        image, text = user["content"]
        assert image == {"type": "image_url", "image_url": {"url": "data:image/png;base64,"
                                                                   + base64.b64encode(png).decode()}}
        assert text["text"].startswith("What do the files say?")
        assert 'File "notes.txt":\nPotassium 5.9 mmol/L (high)' in text["text"]


def test_an_image_is_refused_by_the_bundled_model_naming_file_and_model(stack) -> None:
    app_id, key = app_with_key(stack, "workflow", _flow("gemma3:270m"), name="image to gemma")
    image_id = _upload(stack, key, "xray.png", _png(), "image/png")
    out = _run(stack, key, [{"type": "image", "transfer_method": "local_file", "upload_file_id": image_id}])
    assert out["data"]["status"] == "failed", out
    trace = httpx.get(stack.ws(f"/apps/{app_id}/runs/{out['workflow_run_id']}/events"), headers=stack.console,
                      timeout=30).json()
    llm = next(e for e in trace["data"] if e["event"] == "node_finished" and e["data"]["node_id"] == "llm")
    assert llm["data"]["status"] == "failed"
    error = llm["data"]["error"]
    assert '"xray.png" cannot be sent to model gemma3:270m' in error, error
    assert "cannot read images" in error, json.dumps(llm)[:2000]
