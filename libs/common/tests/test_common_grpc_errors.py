"""One error tree over gRPC: the status table both ways, a field error carried as a
google.rpc.BadRequest detail, and the typed inference client's retries, deadlines and
translation against a real grpc.aio server."""

from __future__ import annotations

import grpc
import pytest

from loom.inference.v1 import inference_pb2 as pb
from loom.inference.v1 import inference_pb2_grpc as pb_grpc
from loom_common import errors
from loom_common.clients.base import NO_RETRY
from loom_common.clients.inference import InferenceClient
from loom_common.grpc_errors import ERRORS, abort, abort_status, status_of
from loom_common.retry import RetryPolicy

FAST = RetryPolicy(initial_interval_s=0.01, maximum_interval_s=0.05, maximum_attempts=3)


def test_every_error_class_reads_back_as_itself() -> None:
    for code, kind in ERRORS.items():
        assert issubclass(kind, errors.RetryableError) or issubclass(kind, errors.PermanentError)
        if kind.grpc_status == code.name:  # the writing direction: the class's own status
            assert status_of(kind("x")) == code
    for kind in {*ERRORS.values()}:
        assert ERRORS[grpc.StatusCode[kind.grpc_status]] is kind  # each class's status reads back to it
    assert issubclass(errors.ResourceExhausted, errors.RetryableError)
    assert issubclass(errors.InvalidArgument, errors.PermanentError)


class _Flaky(pb_grpc.InferenceServicer):
    """Embed: UNAVAILABLE `fail` times, then answers. ListModels: a field error. Generate: two
    chunks, or NOT_FOUND for model "missing"; RemoveRemoteModel: a detail-less old-style field."""

    def __init__(self, fail: int) -> None:
        self.fail, self.calls = fail, {"Embed": 0, "Generate": 0}

    async def Embed(self, request, context):
        self.calls["Embed"] += 1
        if self.calls["Embed"] <= self.fail:
            await abort_status(context, grpc.StatusCode.UNAVAILABLE, "restarting")
        return pb.EmbedResponse(model=request.model, dimension=2, embeddings=[pb.Embedding(values=[0.6, 0.8])])

    async def ListModels(self, request, context):
        await abort(context, errors.InvalidArgument("must be a chat model", field="process_rule.model",
                                                    code="not_chat"))

    async def Generate(self, request, context):
        self.calls["Generate"] += 1
        if request.model == "missing":
            await abort(context, errors.NotFound("model 'missing' not found"))
        yield pb.GenerateChunk(text="he", model=request.model)
        yield pb.GenerateChunk(text="llo", finish_reason=pb.FINISH_REASON_LENGTH,
                               usage=pb.Usage(prompt_tokens=3, completion_tokens=2))

    async def RemoveRemoteModel(self, request, context):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "tenant_id: must be the caller's workspace")


@pytest.fixture
async def served():
    servicer = _Flaky(fail=2)
    server = grpc.aio.server()
    pb_grpc.add_InferenceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = InferenceClient(f"127.0.0.1:{port}", timeout_s=10.0, retry=FAST)
    try:
        yield servicer, client
    finally:
        await client.close()
        await server.stop(0)


async def test_a_retryable_status_is_retried_until_it_answers(served) -> None:
    servicer, client = served
    out = await client.embed("m", ["a"], tenant_id="t1")
    assert out.vectors == [[pytest.approx(0.6), pytest.approx(0.8)]] and servicer.calls["Embed"] == 3


async def test_retries_stop_at_the_policys_attempts(served) -> None:
    servicer, client = served
    servicer.fail = 99
    with pytest.raises(errors.Unavailable) as caught:
        await client.embed("m", ["a"], tenant_id="t1", )
    assert servicer.calls["Embed"] == 3 and caught.value.detail == "restarting"
    assert isinstance(caught.value, errors.RetryableError) and caught.value.service == "inference"
    servicer.calls["Embed"] = 0
    client.retry = NO_RETRY
    with pytest.raises(errors.Unavailable):
        await client.embed("m", ["a"], tenant_id="t1")
    assert servicer.calls["Embed"] == 1


async def test_a_field_error_travels_as_a_bad_request_detail(served) -> None:
    _, client = served
    with pytest.raises(errors.InvalidArgument) as caught:
        await client.list_models()
    assert caught.value.field == "process_rule.model" and caught.value.detail == "must be a chat model"
    assert caught.value.code == "not_chat"  # the server's own code travels as an ErrorInfo reason
    # A server that only writes "<field>: message" in the details text is still read.
    with pytest.raises(errors.InvalidArgument) as old:
        await client.remove_remote("t1", "x")
    assert old.value.field == "tenant_id" and old.value.code == "invalid_argument"


async def test_generate_maps_chunks_and_finish_reason_and_does_not_retry_a_permanent_error(served) -> None:
    servicer, client = served
    chunks = [c async for c in client.generate(pb.GenerateRequest(model="m"), tenant_id="t1")]
    assert "".join(c.text for c in chunks) == "hello"
    assert chunks[-1].finish_reason == "length" and chunks[-1].completion_tokens == 2
    with pytest.raises(errors.NotFound) as missing:
        async for _ in client.generate(pb.GenerateRequest(model="missing"), tenant_id="t1"):
            pass
    assert missing.value.code == "not_found" and missing.value.field is None
    assert servicer.calls["Generate"] == 2  # once each: NOT_FOUND is permanent
