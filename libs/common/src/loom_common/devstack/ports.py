"""Default ports of the local stack, in one table (README's ports table mirrors it).

`LOOM_STACK_PORT_OFFSET` shifts every port, so a second stack (a test, a demo) can run
beside the first on the same machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

OFFSET = int(os.environ.get("LOOM_STACK_PORT_OFFSET", "0"))


@dataclass(frozen=True)
class ServicePorts:
    name: str
    http: int  # API, and /healthz /readyz /metrics unless the service has an admin port
    grpc: int | None = None
    admin: int | None = None  # internal /healthz /readyz /metrics of a service whose HTTP port is public

    @property
    def readyz(self) -> str:
        return f"http://127.0.0.1:{self.admin or self.http}/readyz"


NATS = 4222 + OFFSET
NATS_MONITOR = 8222 + OFFSET
POSTGRES = 5432 + OFFSET
# The web console (services/console/server.mjs): Node, not a Python service, so not in SERVICES.
CONSOLE = 3000 + OFFSET

SERVICES: tuple[ServicePorts, ...] = (
    ServicePorts("inference", http=11434 + OFFSET, grpc=50051 + OFFSET),
    ServicePorts("tools", http=8083 + OFFSET, grpc=50053 + OFFSET),
    ServicePorts("rag", http=8082 + OFFSET, grpc=50052 + OFFSET),
    ServicePorts("orchestrator", http=8081 + OFFSET),
    ServicePorts("gateway", http=8080 + OFFSET, admin=9080 + OFFSET),
)
