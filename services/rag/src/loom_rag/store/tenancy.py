"""Tenant-scoped transactions: `loom.tenant_id` set, and, when the role exists, the session
switched to `loom_rag_tenant`, so row-level-security policies hide every other tenant's rows
even from a query that forgot its filter. One round trip sets everything (set_config is
transaction-local), including per-transaction planner settings such as `hnsw.ef_search`.

Search queries run WITHOUT the role switch: under a row-level-security policy Postgres must
check the policy before any qual that is not leakproof, and the full-text match operator (@@)
is not, so the GIN index could not be used (measured on 100k segments: 113 ms instead of
2.5 ms). Search SQL filters on tenant_id itself (store/search.py), and the tenant-isolation
tests cover it; every write, list and get keeps both walls.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from loom_common.logging import get_logger
from loom_rag.domain.errors import InvalidArgument

log = get_logger(__name__)

RLS_ROLE = "loom_rag_tenant"


def connection_lost(exc: BaseException) -> bool:
    """The database went away (not a query's fault): what any statement would meet now."""
    return isinstance(exc, (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError))


class TenantDb:
    def __init__(self, pool: asyncpg.Pool, *, rls_role: str | None):
        self.pool = pool
        self.rls_role = rls_role

    @classmethod
    async def open(cls, pool: asyncpg.Pool) -> TenantDb:
        """Use the RLS role when this login may switch to it (it is granted, or superuser)."""
        usable = await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AND pg_has_role(current_user, $1, 'MEMBER')",
            RLS_ROLE)
        if not usable:
            log.warning("row-level security role unavailable; relying on tenant filters only", role=RLS_ROLE)
        return cls(pool, rls_role=RLS_ROLE if usable else None)

    @contextlib.asynccontextmanager
    async def transaction(self, tenant_id: str, *, rls: bool = True, **settings: str
                          ) -> AsyncIterator[asyncpg.Connection]:
        """`rls=False` skips the role switch (search only, see below); tenant filters still apply."""
        if not tenant_id:
            raise InvalidArgument("tenant_id", "is required")
        names = ["loom.tenant_id", *settings]
        values = [tenant_id, *settings.values()]
        if self.rls_role and rls:
            names.append("role")
            values.append(self.rls_role)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT set_config(n, v, true) FROM unnest($1::text[], $2::text[]) AS t(n, v)",
                               names, values)
            yield conn
