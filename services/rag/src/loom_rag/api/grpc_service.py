"""rag.v1 servicer (skeleton: retrieval arrives with the RAG issue)."""

from __future__ import annotations

from loom.rag.v1 import rag_pb2, rag_pb2_grpc


class RetrievalServicer(rag_pb2_grpc.RetrievalServicer):
    async def Retrieve(self, request, context):
        return rag_pb2.RetrieveResponse(chunks=[])
