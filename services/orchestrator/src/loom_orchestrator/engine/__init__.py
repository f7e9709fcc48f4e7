"""The graph engine: deterministic traversal of a workflow graph over protocol seams.

Imports no gRPC, FastStream, FastAPI or asyncpg (an import-linter contract checks it); the
transports in `loom_orchestrator.clients`, `.store` and `.handlers` implement `ports`.
"""
