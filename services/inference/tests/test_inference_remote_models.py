"""A workspace's registered remote models (RegisterRemoteModel / RemoveRemoteModel): served to
that workspace's requests only, ahead of the shared routes; the same registration again keeps
the running backend; a changed one replaces it. Through the router, and through the gRPC
servicer over a real channel with service tokens (the tenant is the token's)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from loom.inference.v1 import inference_pb2 as pb
from loom.inference.v1 import inference_pb2_grpc as pb_grpc
from loom_common import service_auth
from loom_common.devstack import infra
from loom_common.grpc_auth import ServiceTokenInterceptor
from loom_common.grpc_client import call_metadata
from loom_inference.api.grpc_service import InferenceServicer
from loom_inference.engine.types import Delta, FinishReason, GenerateRequest, ModelInfo, ModelNotFound
from loom_inference.router.router import Router


class Named:
    """A backend that answers with its own label (which backend served is the point here)."""

    def __init__(self, label: str) -> None:
        self.info = ModelInfo(label, "fake", loaded=True)
        self.label, self.closed = label, False

    async def start(self) -> None: ...

    async def close(self) -> None:
        self.closed = True

    async def generate(self, req) -> AsyncIterator[Delta]:
        yield Delta(text=self.label, finish_reason=FinishReason.STOP)


async def _answer(router: Router, model: str, tenant: str = "") -> str:
    return "".join([d.text async for d in router.generate(GenerateRequest(model=model, prompt="x",
                                                                          tenant_id=tenant))])


async def test_a_workspaces_models_are_its_own() -> None:
    router = Router()
    router.add(Named("shared"))
    built: list[Named] = []

    def build(label: str):
        def make() -> Named:
            built.append(Named(label))
            return built[-1]
        return make

    assert await router.register_tenant("ws-a", "lan", ("openai", "http://a/v1", "", "lan"), build("a-lan")) is False
    assert await router.register_tenant("ws-a", "shared", ("ollama", "http://a", "", "m"), build("a-shared")) is False
    assert await _answer(router, "lan", "ws-a") == "a-lan"
    assert await _answer(router, "shared", "ws-a") == "a-shared"   # the workspace's own comes first
    assert await _answer(router, "shared", "ws-b") == "shared"
    assert await _answer(router, "shared") == "shared"
    with pytest.raises(ModelNotFound):
        await _answer(router, "lan", "ws-b")
    with pytest.raises(ModelNotFound):
        await _answer(router, "lan")

    # The same registration again (the gateway's periodic sync) keeps the running backend.
    assert await router.register_tenant("ws-a", "lan", ("openai", "http://a/v1", "", "lan"), build("again")) is False
    assert [b.label for b in built] == ["a-lan", "a-shared"]
    # A changed one replaces it, and the old backend is closed.
    assert await router.register_tenant("ws-a", "lan", ("openai", "http://b/v1", "", "lan"), build("b-lan")) is True
    assert await _answer(router, "lan", "ws-a") == "b-lan" and built[0].closed
    assert await router.remove_tenant("ws-a", "lan") is True and built[2].closed
    assert await router.remove_tenant("ws-a", "lan") is False
    with pytest.raises(ModelNotFound):
        await _answer(router, "lan", "ws-a")


async def test_registration_over_grpc_acts_for_the_tokens_tenant() -> None:
    router = Router()
    made: list[tuple] = []

    def build_remote(name, backend, base_url, api_key, remote_model):
        made.append((name, backend, base_url, api_key, remote_model))
        return Named(f"{backend}:{remote_model}")

    auth = service_auth.ServiceAuth("test-inference", service_auth.load_secret())
    server = grpc.aio.server(interceptors=[ServiceTokenInterceptor(auth)])
    pb_grpc.add_InferenceServicer_to_server(InferenceServicer(router, build_remote), server)
    port = server.add_insecure_port(f"127.0.0.1:{infra.free_port()}")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.InferenceStub(channel)
            ok = pb.RegisterRemoteModelRequest(tenant_id="ws-a", name="lan", backend="ollama",
                                               base_url="http://10.0.0.5:11434", api_key="k", remote_model="llama")
            res = await stub.RegisterRemoteModel(ok, metadata=call_metadata(tenant_id="ws-a"), timeout=10)
            assert res.replaced is False and made == [("lan", "ollama", "http://10.0.0.5:11434", "k", "llama")]

            chunks = [c async for c in stub.Generate(pb.GenerateRequest(model="lan", prompt="hi"),
                                                      metadata=call_metadata(tenant_id="ws-a"), timeout=10)]
            assert "".join(c.text for c in chunks) == "ollama:llama"
            with pytest.raises(grpc.aio.AioRpcError) as other:
                async for _ in stub.Generate(pb.GenerateRequest(model="lan", prompt="hi"),
                                             metadata=call_metadata(tenant_id="ws-b"), timeout=10):
                    pass
            assert other.value.code() == grpc.StatusCode.NOT_FOUND

            # Another workspace's registration, bad fields: refused with the field named.
            for req, field in ((pb.RegisterRemoteModelRequest(tenant_id="ws-a", name="x", backend="openai",
                                                              base_url="http://h/v1"), "tenant_id"),
                               (pb.RegisterRemoteModelRequest(tenant_id="ws-b", name="", backend="openai",
                                                              base_url="http://h/v1"), "name"),
                               (pb.RegisterRemoteModelRequest(tenant_id="ws-b", name="x", backend="vllm",
                                                              base_url="http://h/v1"), "backend"),
                               (pb.RegisterRemoteModelRequest(tenant_id="ws-b", name="x", backend="openai",
                                                              base_url="file:///etc"), "base_url")):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.RegisterRemoteModel(req, metadata=call_metadata(tenant_id="ws-b"), timeout=10)
                assert refused.value.code() in (grpc.StatusCode.INVALID_ARGUMENT,
                                                grpc.StatusCode.PERMISSION_DENIED), field
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED or field in refused.value.details()

            gone = await stub.RemoveRemoteModel(pb.RemoveRemoteModelRequest(tenant_id="ws-a", name="lan"),
                                                metadata=call_metadata(tenant_id="ws-a"), timeout=10)
            assert gone.removed is True
    finally:
        await server.stop(None)
