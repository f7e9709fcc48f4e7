"""Images reach a vision model decoded and in order: Ollama's `images` on /api/chat and
/api/generate, OpenAI's `image_url` data-URL parts. No vision GGUF is available offline, so
the model here is a scripted backend that declares vision and records the bytes it got; the
unmodified `ollama` and `openai` clients send through the service's real HTTP app (in
process). Bounds, bad data and remote URLs are 400s naming the field; a text model refuses
images (for real with the bundled model in test_inference_standalone.py)."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator

import httpx
import ollama
import openai
import pytest
from fastapi import FastAPI

from loom_inference.api import images
from loom_inference.api.http import mount
from loom_inference.backends.fake import FakeRunner
from loom_inference.backends.local import LocalBackend
from loom_inference.engine.types import Delta, FinishReason, GenerateRequest, ModelInfo, Usage
from loom_inference.models import ModelManager
from loom_inference.router.router import Router
from loom_inference.settings import InferenceSettings

PNG = b"\x89PNG\r\n\x1a\n" + b"first image"
JPEG = b"\xff\xd8\xff\xe0" + b"second image"
GIF = b"GIF89a" + b"third image"


class SeeingBackend:
    """A scripted vision model: records the decoded images of every request it serves."""

    def __init__(self, name: str = "seer") -> None:
        self.info = ModelInfo(name, "scripted", vision=True)
        self.seen: list[list[tuple[str, bytes]]] = []  # per request: (role, bytes) in order

    async def start(self) -> None:
        pass

    async def generate(self, req: GenerateRequest) -> AsyncIterator[Delta]:
        self.seen.append([(m.role, img.data) for m in req.messages for img in m.images])
        yield Delta(text=f"I see {len(req.images)} images.")
        yield Delta(finish_reason=FinishReason.STOP, usage=Usage(3, 5))

    async def close(self) -> None:
        pass

    def load(self) -> tuple[int, int]:
        return (0, 0)


def _app(tmp_path, seer: SeeingBackend) -> FastAPI:
    router = Router()
    router.add(seer)
    router.add(LocalBackend(ModelInfo("text-only", "llamacpp"), lambda: FakeRunner(n_ctx=256, max_seqs=2, eos_after=2),
                            grammar_from_schema=lambda s: s))
    settings = InferenceSettings(models_dir=tmp_path / "models")
    app = FastAPI()
    mount(app, router, ModelManager(router, settings), settings)
    return app


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_inference_images_reach_a_vision_model_decoded_and_in_order(tmp_path) -> None:
    seer = SeeingBackend()
    transport = httpx.ASGITransport(app=_app(tmp_path, seer))

    async def main():
        client = ollama.AsyncClient(host="http://127.0.0.1", transport=transport)
        chat = await client.chat(model="seer", messages=[
            {"role": "user", "content": "Look.", "images": [PNG]},
            {"role": "assistant", "content": "Yes?"},
            {"role": "user", "content": "And these?", "images": [JPEG, GIF]}])
        assert chat.message.content == "I see 3 images."
        assert seer.seen[-1] == [("user", PNG), ("user", JPEG), ("user", GIF)]

        gen = await client.generate(model="seer", prompt="Compare them.", images=[GIF, PNG])
        assert gen.response == "I see 2 images."
        assert seer.seen[-1] == [("user", GIF), ("user", PNG)]
        streamed = [p async for p in await client.generate(model="seer", prompt="Again.", images=[JPEG], stream=True)]
        assert "".join(p.response for p in streamed) == "I see 1 images." and seer.seen[-1] == [("user", JPEG)]

        oa = openai.AsyncOpenAI(base_url="http://127.0.0.1/v1", api_key="unused",
                                http_client=httpx.AsyncClient(transport=transport))
        done = await oa.chat.completions.create(model="seer", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": _data_url(JPEG, "image/jpeg")}},
            {"type": "text", "text": "and"},
            {"type": "image_url", "image_url": {"url": _data_url(PNG), "detail": "low"}}]}])
        assert done.choices[0].message.content == "I see 2 images."
        assert seer.seen[-1] == [("user", JPEG), ("user", PNG)]
    asyncio.run(main())


def test_inference_images_bad_or_too_many_are_400s_naming_the_field(tmp_path, monkeypatch) -> None:
    seer = SeeingBackend()
    transport = httpx.ASGITransport(app=_app(tmp_path, seer))
    b64 = base64.b64encode(PNG).decode()

    async def main():
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            async def chat(images_: list[str], model: str = "seer") -> httpx.Response:
                return await http.post("/api/chat", json={"model": model, "stream": False, "messages": [
                    {"role": "user", "content": "Look.", "images": images_}]})

            many = await chat([b64] * (images.MAX_IMAGES + 1))
            assert many.status_code == 400 and many.json()["field"] == f"messages.0.images.{images.MAX_IMAGES}"
            bad = await chat([b64, "not base64!"])
            assert bad.status_code == 400 and bad.json()["field"] == "messages.0.images.1"
            text = await chat([base64.b64encode(b"just some text").decode()])
            assert text.status_code == 400 and "PNG" in text.json()["error"]
            refused = await chat([b64], model="text-only")
            assert refused.status_code == 400 and refused.json()["field"] == "messages.0.images"
            assert "cannot read images" in refused.json()["error"]
            raw = await http.post("/api/generate", json={"model": "seer", "prompt": "x", "raw": True,
                                                         "images": [b64], "stream": False})
            assert raw.status_code == 400 and raw.json()["field"] == "images"

            monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 1024)
            big = await http.post("/api/generate", json={"model": "seer", "prompt": "x", "stream": False,
                                                         "images": [base64.b64encode(PNG + b"\0" * 2048).decode()]})
            assert big.status_code == 400 and big.json()["field"] == "images.0" and "MiB" in big.json()["error"]

            remote = await http.post("/v1/chat/completions", json={"model": "seer", "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]})
            assert remote.status_code == 400 and remote.json()["error"]["param"] == "messages.0.content.0.image_url"
            assert "not fetched" in remote.json()["error"]["message"]
        assert seer.seen == []  # nothing refused ever reached the model
    asyncio.run(main())


def test_inference_large_images_decode_off_the_event_loop(monkeypatch) -> None:
    threads: list[str] = []
    real = images._b64decode

    def spy(text: str) -> bytes:
        threads.append(threading.current_thread().name)
        return real(text)

    monkeypatch.setattr(images, "_b64decode", spy)
    big = PNG + b"\0" * (images._OFF_LOOP_CHARS)

    async def main():
        loop_thread = threading.current_thread().name
        small = await images.decode_base64(base64.b64encode(PNG).decode(), "images.0")
        large = await images.decode_base64(base64.b64encode(big).decode(), "images.1")
        assert small.data == PNG and large.data == big and large.mime == "image/png"
        assert threads[0] == loop_thread and threads[1] != loop_thread
    asyncio.run(main())


@pytest.mark.parametrize("url", ["data:image/png,notbase64", "ftp://host/a.png", "file:///etc/passwd"])
def test_inference_image_urls_other_than_base64_data_are_refused(url) -> None:
    with pytest.raises(images.InvalidRequest) as refused:
        asyncio.run(images.decode_url(url, "messages.0.content.0.image_url"))
    assert refused.value.field == "messages.0.content.0.image_url"


class _Registry:
    """A loopback Ollama-style registry whose `vis` model has a projector layer (mmproj)."""

    def __init__(self, root) -> None:
        import hashlib
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from loom_common.devstack import infra
        from loom_common.testing import write_header_only_gguf

        write_header_only_gguf(root / "model.gguf", {"general.architecture": "gemma3", "general.file_type": 15})
        self.blobs = {"model": (root / "model.gguf").read_bytes(), "mmproj": b"GGUF projector weights"}
        digests = {k: hashlib.sha256(v).hexdigest() for k, v in self.blobs.items()}
        by_digest = {digests[k]: v for k, v in self.blobs.items()}
        manifest = json.dumps({"schemaVersion": 2, "layers": [
            {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digests['model']}"},
            {"mediaType": "application/vnd.ollama.image.projector", "digest": f"sha256:{digests['mmproj']}"},
            {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "0" * 64}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                body = manifest if self.path.endswith("/library/vis/manifests/latest") else by_digest.get(
                    self.path.rsplit("sha256:", 1)[-1]) if "/blobs/sha256:" in self.path else None
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", infra.free_port()), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"


def test_inference_pull_stores_the_projector_beside_a_vision_model(tmp_path) -> None:
    from pathlib import Path

    from loom_inference.backends.llamacpp_vision import LlamaVisionBackend
    from loom_inference.pull import PullConfig, pull
    from loom_inference.router.factory import build_backend, route_for
    from loom_inference.store import ModelStore

    registry = _Registry(tmp_path)
    store = ModelStore(tmp_path / "models")

    async def main():
        return [p.status async for p in pull("vis", store, PullConfig(registry_url=registry.url))]
    try:
        statuses = asyncio.run(main())
    finally:
        registry.httpd.shutdown()
    assert statuses[-1] == "success"
    stored = store.get("vis:latest")
    assert stored is not None and Path(stored.projector).read_bytes() == registry.blobs["mmproj"]
    assert Path(stored.path).read_bytes() == registry.blobs["model"] and stored.projector != stored.path
    route = route_for(stored)
    assert route.backend == "llamacpp-vision" and route.projector == stored.projector
    backend = build_backend(route, InferenceSettings(models_dir=tmp_path / "models"))
    assert isinstance(backend, LlamaVisionBackend) and backend.info.vision and not backend.info.loaded
    store.remove("vis:latest")  # the projector goes with its model
    assert not Path(stored.projector).exists() and not Path(stored.path).exists()


def test_inference_vision_backend_hands_images_to_the_projector_in_order() -> None:
    from loom_inference.backends.llamacpp_vision import chat_messages
    from loom_inference.engine.types import ChatMessage, Image

    two = [Image(PNG, "f"), Image(JPEG, "f", "image/jpeg")]
    msgs = chat_messages([ChatMessage("system", "Be brief."), ChatMessage("user", "Which is first?", images=two)])
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    parts = msgs[1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"] and parts[2]["text"] == "Which is first?"
    assert parts[0]["image_url"]["url"] == _data_url(PNG)
    assert parts[1]["image_url"]["url"] == _data_url(JPEG, "image/jpeg")
