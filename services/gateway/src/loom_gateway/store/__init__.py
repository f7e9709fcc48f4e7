"""The gateway's tables in Postgres and its counters in Redis: the only layer of the service
that speaks SQL (asyncpg). import-linter forbids asyncpg, grpc and FastStream to
`loom_gateway.domain` (root pyproject.toml), which calls these modules for its rows.
"""
