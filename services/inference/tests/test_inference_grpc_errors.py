"""gRPC status mapping with a real grpc.aio server and the fake runner: overloaded requests get
RESOURCE_EXHAUSTED, bad fields INVALID_ARGUMENT naming the field, unknown models NOT_FOUND."""

from __future__ import annotations

import grpc
import pytest

from loom.inference.v1 import inference_pb2 as pb
from loom.inference.v1 import inference_pb2_grpc
from loom_common.devstack import infra
from loom_common.runtime import GRPC_EXCLUSIVE_PORT
from loom_inference.api.grpc_service import InferenceServicer
from loom_inference.backends.fake import FakeRunner
from loom_inference.backends.local import LocalBackend
from loom_inference.engine.types import ModelInfo
from loom_inference.router.router import Router


async def _code(stub, req: pb.GenerateRequest) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.Generate(req, timeout=10):
            pass
    return err.value.code(), err.value.details()


async def test_inference_grpc_typed_errors() -> None:
    router = Router()
    router.add(LocalBackend(ModelInfo("fake", "fake"), lambda: FakeRunner(max_seqs=1, step_delay_s=0.01),
                            grammar_from_schema=lambda s: s), max_concurrency=1)
    server = grpc.aio.server(options=GRPC_EXCLUSIVE_PORT)
    inference_pb2_grpc.add_InferenceServicer_to_server(InferenceServicer(router), server)
    port = infra.free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = inference_pb2_grpc.InferenceStub(ch)
            busy = stub.Generate(pb.GenerateRequest(model="fake", prompt="a b", sampling=pb.SamplingParams(
                max_tokens=500)), timeout=10)
            await busy.read()
            code, _ = await _code(stub, pb.GenerateRequest(model="fake", prompt="x"))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            busy.cancel()
            code, details = await _code(stub, pb.GenerateRequest(model="fake", prompt="x", sampling=pb.SamplingParams(
                temperature=-1)))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and "sampling.temperature" in details
            code, details = await _code(stub, pb.GenerateRequest(model="fake"))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and "prompt" in details
            code, _ = await _code(stub, pb.GenerateRequest(model="ghost", prompt="x"))
            assert code == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Embed(pb.EmbedRequest(model="fake", inputs=["x"]), timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await server.stop(0)
        await router.close()
