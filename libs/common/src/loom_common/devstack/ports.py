"""Default ports of the local stack, in one table (README's ports table mirrors it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServicePorts:
    name: str
    http: int  # API and/or admin: /healthz /readyz /metrics
    grpc: int | None = None


NATS = 4222
NATS_MONITOR = 8222
POSTGRES = 5432

SERVICES: tuple[ServicePorts, ...] = (
    ServicePorts("inference", http=11434, grpc=50051),
    ServicePorts("tools", http=8083, grpc=50053),
    ServicePorts("rag", http=8082, grpc=50052),
    ServicePorts("orchestrator", http=8081),
    ServicePorts("gateway", http=8080),
)
