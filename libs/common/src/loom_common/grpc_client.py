"""Client channels to other Loom services, the same way everywhere.

`channel(addr)` gives a grpc.aio channel; `call_metadata()` gives what every call sends along:
this service's signed token for the tenant (`service_auth`: servers refuse a call without one,
and a body whose tenant is not the token's), the W3C trace context of the current span (so the
callee's server span joins the caller's trace) and Loom's tenant and run ids. Every call should
pass both `metadata=call_metadata(...)` and a `timeout=` (a deadline: no side effect without one).

No OpenTelemetry client interceptor: grpc.aio runs an interceptor in a task of its own before
the call's own task, so on a busy event loop the request waited behind everything else ready
twice more (measured on the orchestrator's path to a model's first token); the trace context
it would add is already in `call_metadata`, and the callee's span times the call.
"""

from __future__ import annotations

import grpc

from loom_common import service_auth, tls
from loom_common.grpc_auth import bearer
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
    """A channel to a Loom service; must be created inside a running loop. With LOOM_TLS_CA_FILE
    set it is TLS and verifies the server's certificate against that CA (loom_common.tls);
    otherwise plaintext. Either way the service token in each call's metadata, not the channel,
    says who calls."""
    credentials = tls.grpc_channel_credentials()
    if credentials is not None:
        return grpc.aio.secure_channel(addr, credentials, options=_OPTIONS)
    return grpc.aio.insecure_channel(addr, options=_OPTIONS)


def call_metadata(*, tenant_id: str | None = None, run_id: str | None = None) -> list[tuple[str, str]]:
    """Metadata for a call acting for `tenant_id` (None: for no tenant, e.g. listing models)."""
    return [bearer(service_auth.current().token(tenant_id)), *grpc_metadata(tenant_id=tenant_id, run_id=run_id)]
