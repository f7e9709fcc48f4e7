"""Composition root of the inference service: wires the gRPC servicer and HTTP APIs."""

from __future__ import annotations

from loom.inference.v1 import inference_pb2_grpc
from loom_common.runtime import ServiceRuntime
from loom_inference import __version__
from loom_inference.api.grpc_service import InferenceServicer
from loom_inference.settings import InferenceSettings


def build(settings: InferenceSettings | None = None) -> ServiceRuntime:
    settings = settings or InferenceSettings()
    rt = ServiceRuntime("inference", settings, version=__version__, schema="inference",
                        migrations="loom_inference.migrations", grpc_port=settings.grpc_port)
    rt.add_grpc_service(lambda server: inference_pb2_grpc.add_InferenceServicer_to_server(InferenceServicer(), server))
    return rt
