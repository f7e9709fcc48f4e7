"""inference.v1 servicer (skeleton: the engine arrives with the inference issue)."""

from __future__ import annotations

import grpc

from loom.inference.v1 import inference_pb2, inference_pb2_grpc


class InferenceServicer(inference_pb2_grpc.InferenceServicer):
    async def ListModels(self, request, context):
        return inference_pb2.ListModelsResponse(models=[])

    async def Generate(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no engine configured yet")

    async def Embed(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no embedding model configured yet")
