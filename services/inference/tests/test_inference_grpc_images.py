"""Images over gRPC (`ChatMessage.images`, what the orchestrator's llm node sends): checked like the
HTTP APIs' (format, count), forwarded to a remote model the workspace registered with `vision`
(as OpenAI image_url data: URLs, observed on a loopback OpenAI-compatible stub), and refused with
INVALID_ARGUMENT naming `messages.<i>.images.<j>` by a model that cannot read images."""

from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from PIL import Image

from loom.inference.v1 import inference_pb2 as pb
from loom.inference.v1 import inference_pb2_grpc as pb_grpc
from loom_common import service_auth
from loom_common.grpc_auth import ServiceTokenInterceptor
from loom_common.grpc_client import call_metadata
from loom_common.runtime import GRPC_EXCLUSIVE_PORT
from loom_inference.api.grpc_service import InferenceServicer, request_from_proto
from loom_inference.backends.ollama_remote import ollama_body
from loom_inference.engine.types import InvalidRequest
from loom_inference.router.factory import remote_builder
from loom_inference.router.router import Router
from loom_inference.settings import InferenceSettings


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (0, 90, 200)).save(buf, format="PNG")
    return buf.getvalue()


class OpenAIStub:
    """A loopback OpenAI-compatible chat endpoint that records each request body."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                stub.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                chunk = {"choices": [{"index": 0, "delta": {"content": "seen"}, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def _request(images: list[bytes], model: str = "m") -> pb.GenerateRequest:
    return pb.GenerateRequest(model=model, messages=[
        pb.ChatMessage(role="system", content="look"),
        pb.ChatMessage(role="user", content="what is it?", images=[pb.Image(data=d) for d in images])])


def test_grpc_images_are_checked_and_keep_their_field() -> None:
    png = _png()
    req = request_from_proto(_request([png]))
    assert [(i.field, i.mime, i.data) for i in req.images] == [("messages.1.images.0", "image/png", png)]
    with pytest.raises(InvalidRequest, match=r"messages\.1\.images\.1: is not a PNG"):
        request_from_proto(_request([png, b"%PDF-1.4 not an image"]))
    with pytest.raises(InvalidRequest, match=r"messages\.1\.images\.8: a request may carry at most 8"):
        request_from_proto(_request([png] * 9))


def test_an_ollama_remote_gets_base64_images() -> None:
    png = _png()
    body = ollama_body(request_from_proto(_request([png])), "llava")
    assert body["messages"][1]["images"] == [base64.b64encode(png).decode()]
    assert "images" not in body["messages"][0]


async def test_a_vision_remote_gets_the_images_and_one_without_vision_refuses_them(tmp_path) -> None:
    stub, png = OpenAIStub(), _png()
    auth = service_auth.ServiceAuth("test-inference", service_auth.load_secret())
    server = grpc.aio.server(interceptors=[ServiceTokenInterceptor(auth)], options=GRPC_EXCLUSIVE_PORT)
    build = remote_builder(InferenceSettings(models_dir=tmp_path / "models"))
    pb_grpc.add_InferenceServicer_to_server(InferenceServicer(Router(), build), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    meta = call_metadata(tenant_id="ws")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            api = pb_grpc.InferenceStub(channel)
            for name, vision in (("sees", True), ("blind", False)):
                await api.RegisterRemoteModel(pb.RegisterRemoteModelRequest(
                    tenant_id="ws", name=name, backend="openai", base_url=stub.url, vision=vision),
                    metadata=meta, timeout=10)

            chunks = [c async for c in api.Generate(_request([png], "sees"), metadata=meta, timeout=10)]
            assert "".join(c.text for c in chunks) == "seen"
            user = stub.bodies[-1]["messages"][1]
            assert user["content"] == [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}},
                {"type": "text", "text": "what is it?"}]

            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in api.Generate(_request([png], "blind"), metadata=meta, timeout=10):
                    pass
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert refused.value.details().startswith("messages.1.images.0: blind cannot read images")
            assert len(stub.bodies) == 1  # the refused request never left the engine
    finally:
        await server.stop(0)
        stub.httpd.shutdown()
