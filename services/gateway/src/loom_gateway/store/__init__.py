"""The gateway's tables in Postgres: the only layer of the service that speaks SQL (asyncpg).

import-linter forbids asyncpg, grpc and FastStream to `loom_gateway.domain`; the modules still
there that import asyncpg are listed in the root pyproject.toml, to move here.
"""
