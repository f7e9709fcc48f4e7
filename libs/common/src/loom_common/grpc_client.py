"""Client channels to other Loom services, the same way everywhere.

`channel(addr)` gives a grpc.aio channel with the OpenTelemetry client interceptor, so the
callee's spans join the caller's trace; `call_metadata()` adds Loom's tenant and run ids.
Every call should pass a `timeout=` (a deadline): no side effect without one.
"""

from __future__ import annotations

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from loom_common.telemetry import grpc_metadata

# Token streams can be long; keep large messages (embeddings of big batches) possible.
_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    # Behind a headless Kubernetes Service the name resolves to every replica: spread calls.
    ("grpc.lb_policy_name", "round_robin"),
]


def channel(addr: str) -> grpc.aio.Channel:
    """An insecure channel (inside the cluster); must be created inside a running loop."""
    return grpc.aio.insecure_channel(addr, options=_OPTIONS, interceptors=aio_client_interceptors())


def call_metadata(*, tenant_id: str | None = None, run_id: str | None = None) -> list[tuple[str, str]]:
    return grpc_metadata(tenant_id=tenant_id, run_id=run_id)
