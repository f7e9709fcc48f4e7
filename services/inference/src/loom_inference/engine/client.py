"""EngineClient: the one interface the transports (gRPC, Ollama, OpenAI) see.

The router implements it; tests may pass anything with the same shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from loom_inference.engine.types import Delta, EmbedResult, GenerateRequest, ModelInfo


class EngineClient(Protocol):
    def generate(self, req: GenerateRequest) -> AsyncIterator[Delta]: ...
    async def embed(self, model: str, inputs: list[str], *, normalize: bool = True,
                    tenant_id: str = "") -> EmbedResult: ...
    def list_models(self) -> list[ModelInfo]: ...
    def running(self) -> list[tuple[ModelInfo, int, int]]: ...
    async def register_tenant(self, tenant_id: str, name: str, source: tuple, build) -> bool: ...
    async def remove_tenant(self, tenant_id: str, name: str) -> bool: ...
