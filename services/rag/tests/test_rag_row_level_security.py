"""Row-level security is really on when rag runs as it does in the stack: logged in as its own
non-superuser role `loom_rag` (made by the one bootstrap step, devstack.db_roles), migrated by
that role, switching to `loom_rag_tenant` in tenant transactions. A superuser would bypass every
policy, so the test proves the role, not just the policy text."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

from loom_common import db
from loom_common.db import _with_database
from loom_common.devstack import db_roles
from loom_common.migrations import apply_migrations
from loom_rag.store.tenancy import TenantDb

pytestmark = pytest.mark.integration


@pytest.fixture
async def rag_as_its_role(database_url, service_role_passwords):
    admin = _with_database(database_url, f"rls_{uuid.uuid4().hex[:10]}")
    dsns = await db_roles.provision(admin, service_role_passwords)
    await apply_migrations(dsns["rag"], "rag", "loom_rag.migrations")
    pool = await db.create_pool(dsns["rag"], schema="rag", min_size=1, max_size=2)
    try:
        yield await TenantDb.open(pool)
    finally:
        await pool.close()


async def _add_dataset(conn: asyncpg.Connection, tenant: str, name: str) -> None:
    await conn.execute("INSERT INTO datasets (id, tenant_id, name, embedding_model, embedding_dim, process_rule) "
                       "VALUES ($1, $2, $3, 'all-minilm:l6-v2', 384, $4::jsonb)",
                       uuid.uuid4(), tenant, name, json.dumps({}))


async def test_row_level_security_hides_other_tenants_from_the_rag_role(rag_as_its_role) -> None:
    tdb = rag_as_its_role
    login = await tdb.pool.fetchrow("SELECT current_user AS name, rolsuper, rolbypassrls FROM pg_roles "
                                    "WHERE rolname = current_user")
    assert (login["name"], login["rolsuper"], login["rolbypassrls"]) == ("loom_rag", False, False)
    assert tdb.rls_role == "loom_rag_tenant"  # not silently skipped

    for tenant in ("tenant-a", "tenant-b"):
        async with tdb.transaction(tenant) as conn:
            await _add_dataset(conn, tenant, f"{tenant} notes")

    # A query that forgot its tenant filter still sees only its own tenant's rows.
    async with tdb.transaction("tenant-a") as conn:
        assert await conn.fetchval("SELECT current_user") == "loom_rag_tenant"
        assert [r["tenant_id"] for r in await conn.fetch("SELECT tenant_id FROM datasets")] == ["tenant-a"]
        # ... and cannot write another tenant's row (the policy's WITH CHECK).
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await _add_dataset(conn, "tenant-b", "planted")

    # Without the tenant setting, the tenant role sees nothing at all.
    async with tdb.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE loom_rag_tenant")
        assert await conn.fetchval("SELECT count(*) FROM datasets") == 0


async def test_a_service_role_reaches_only_its_own_schema(rag_as_its_role, database_url) -> None:
    async with rag_as_its_role.pool.acquire() as conn:
        for sql in ("SELECT pg_read_file('/etc/hostname')", "CREATE SCHEMA intruder",
                    "CREATE TABLE gateway.intruder (x int)", "COPY (SELECT 1) TO PROGRAM 'true'",
                    "SELECT count(*) FROM pg_authid"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql)
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(db_roles.service_dsn(database_url, "rag", "not-its-password"))
