"""gRPC against the real service process and the real bundled model: streaming with usage
and timings, cancel mid-stream frees the slot, deadlines, typed errors, Embed, ListModels."""

from __future__ import annotations

import grpc
import httpx
import pytest

from loom.inference.v1 import inference_pb2 as pb
from loom.inference.v1 import inference_pb2_grpc
from loom_common.devstack import infra
from loom_common.testing import eventually
from loom_common.testing import service_channel as channel

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _req(prompt: str, max_tokens: int = 16, **kw) -> pb.GenerateRequest:
    return pb.GenerateRequest(model="gemma3:270m", messages=[pb.ChatMessage(role="user", content=prompt)],
                              sampling=pb.SamplingParams(temperature=0.0, max_tokens=max_tokens), **kw)


def _running(base_url: str) -> float:
    for line in httpx.get(base_url + "/metrics").text.splitlines():
        if line.startswith("loom_inference_num_requests_running{") and 'gemma3:270m' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_inference_grpc_end_to_end(run_service) -> None:
    port = infra.free_port()
    svc = run_service("inference", env={"LOOM_INFERENCE_GRPC_PORT": str(port),
                                        "LOOM_INFERENCE_PERFORMANCE__MAX_PARALLEL": "2"}, timeout_s=120)
    # Ready means the bundled models are loaded: a request now does not wait for a load.
    assert httpx.get(svc.base_url + "/readyz").json()["checks"]["models"] is True
    assert "gemma3:270m" in {m["name"] for m in httpx.get(svc.base_url + "/api/ps").json()["models"]}
    async with channel(f"127.0.0.1:{port}") as ch:
        stub = inference_pb2_grpc.InferenceStub(ch)

        # Streaming: several text chunks, then one final chunk with reason, usage and timings.
        chunks = [c async for c in stub.Generate(_req("Say hello", 12), timeout=120)]
        last = chunks[-1]
        assert len(chunks) >= 3 and all(not c.HasField("usage") for c in chunks[:-1])
        assert last.finish_reason in (pb.FINISH_REASON_LENGTH, pb.FINISH_REASON_STOP)
        assert last.usage.prompt_tokens > 3 and 0 < last.usage.completion_tokens <= 12
        assert last.timings.ttft_ms > 0 and last.timings.total_ms >= last.timings.ttft_ms
        assert last.model == "gemma3:270m"
        assert "".join(c.text for c in chunks)

        # Cancel mid-stream: the slot is freed (both slots serve new streams at once afterwards).
        call = stub.Generate(_req("Write a long story", 400), timeout=120)
        got = 0
        async for _ in call:
            got += 1
            if got == 3:
                call.cancel()
                break
        await eventually(lambda: _running(svc.base_url) == 0, "the cancelled stream's slot freed")
        assert 'loom_inference_request_success_total{finished_reason="aborted",model_name="gemma3:270m"}' \
            in httpx.get(svc.base_url + "/metrics").text

        # Deadline: the call ends DEADLINE_EXCEEDED and the sequence is aborted.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in stub.Generate(_req("Write a long story", 400), timeout=0.5):
                pass
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        # Typed errors.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in stub.Generate(pb.GenerateRequest(model="nope:1b", prompt="x"), timeout=10):
                pass
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in stub.Generate(_req("word " * 9000, 16), timeout=30):
                pass
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "messages" in err.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in stub.Generate(_req("hi", 16, json_schema="{not json"), timeout=10):
                pass
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "json_schema" in err.value.details()

        # Embed (batched) and ListModels with the embedding dimension.
        emb = await stub.Embed(pb.EmbedRequest(model="all-minilm:l6-v2", inputs=["a cat", "a dog", "tax law"],
                                               normalize=True), timeout=120)
        assert emb.dimension == 384 and len(emb.embeddings) == 3 and len(emb.embeddings[0].values) == 384
        models = {m.name: m for m in (await stub.ListModels(pb.ListModelsRequest(), timeout=10)).models}
        assert models["all-minilm:l6-v2"].embedding_dimension == 384
        assert models["gemma3:270m"].kind == "chat" and models["gemma3:270m"].backend == "llamacpp"
    assert svc.stop() == 0
