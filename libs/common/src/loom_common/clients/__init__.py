"""Typed clients of Loom's gRPC contracts (libs/protos), one per proto, shared by every caller.

`ServiceClient` (base.py) is what each adds to its stub: a channel opened lazily from the shared
factory (`loom_common.grpc_client`), a deadline on every call, the caller's metadata (service
token, tenant, run, W3C trace context), retries of retryable statuses and gRPC statuses
translated into `loom_common.errors` (`loom_common.grpc_errors`, one table both ways).
"""
