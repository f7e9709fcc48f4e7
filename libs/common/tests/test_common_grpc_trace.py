"""A gRPC call made the Loom way (`grpc_client.channel` + `call_metadata`) carries the caller's
trace and ids into a server that has the runtime's OpenTelemetry server interceptor."""

from __future__ import annotations

import grpc
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from loom.inference.v1 import inference_pb2 as pb
from loom.inference.v1 import inference_pb2_grpc as pb_grpc
from loom_common import grpc_client
from loom_common.runtime import GRPC_EXCLUSIVE_PORT
from loom_common.telemetry import RUN_HEADER, current_trace_id, setup_tracing, tracer


class _Echo(pb_grpc.InferenceServicer):
    """Answers with what the server side sees: its trace id and the run id it was sent."""

    async def ListModels(self, request, context):
        run_id = dict(context.invocation_metadata()).get(RUN_HEADER, "")
        return pb.ListModelsResponse(models=[pb.ModelInfo(name=current_trace_id() or "", family=run_id)])


async def test_the_callers_trace_and_run_reach_the_server() -> None:
    setup_tracing("test-grpc-trace")
    server = grpc.aio.server(interceptors=[aio_server_interceptor()], options=GRPC_EXCLUSIVE_PORT)
    pb_grpc.add_InferenceServicer_to_server(_Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc_client.channel(f"127.0.0.1:{port}")
    try:
        with tracer("test").start_as_current_span("caller"):
            sent = current_trace_id()
            res = await pb_grpc.InferenceStub(channel).ListModels(
                pb.ListModelsRequest(), metadata=grpc_client.call_metadata(tenant_id="t1", run_id="run-7"), timeout=5)
        assert sent is not None
        assert res.models[0].name == sent  # the server's span is in the caller's trace
        assert res.models[0].family == "run-7"
    finally:
        await channel.close()
        await server.stop(0)
