"""gRPC adapters implementing the engine's ports (the only modules that touch protobuf here).

Channels, deadlines, Loom's metadata, retries and the translation of gRPC statuses into
`loom_common.errors` (RetryableError / PermanentError leaves) are the shared clients'
(`loom_common.clients`), so nodes never see a grpc exception.
"""
