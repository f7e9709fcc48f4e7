"""The one bootstrap step of the database: a login role per service, owning its own schema.

Run with the superuser's DSN (the embedded stack's generated one, or an operator's) before the
services start. It is idempotent and brings an older database (schemas owned by the superuser)
up to date:

    the database + pgvector        created if missing (services may not: no CREATEDB)
    loom_<service> (LOGIN)         NOSUPERUSER NOCREATEDB NOCREATEROLE, password from the caller
    schema <service>               owned by loom_<service>, with everything already in it
    loom_rag_tenant (NOLOGIN)      rag's row-level-security role, granted to loom_rag, which
                                   switches to it in tenant transactions (rag/store/tenancy.py)
    CONNECT on the database        to the service roles only (revoked from PUBLIC)

A service then connects as its role and can touch only its own schema: no other service's
tables, no superuser functions (pg_read_file, COPY PROGRAM, ALTER SYSTEM).
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from loom_common import db, secret_files

# service -> schema it owns (the schema names the services pass to ServiceRuntime).
SERVICE_SCHEMAS: dict[str, str] = {
    "gateway": "gateway", "orchestrator": "orchestrator", "rag": "rag", "inference": "inference",
    "tools": "tools",
}
RAG_TENANT_ROLE = "loom_rag_tenant"
_LOCK = 7342002  # serialises two bootstraps of one cluster


def role_name(service: str) -> str:
    return f"loom_{service}"


def load_passwords(secrets_dir: Path) -> dict[str, str]:
    """Each service role's password, generated (mode 0600) into `secrets_dir/postgres-<service>`
    on first use: the embedded stack's, or a test session's."""
    secrets_dir.mkdir(parents=True, exist_ok=True)
    secrets_dir.chmod(0o700)
    return {service: secret_files.read_or_create(secrets_dir / f"postgres-{service}",
                                                 lambda: secrets.token_urlsafe(24).encode()).decode().strip()
            for service in SERVICE_SCHEMAS}


def service_dsn(admin_dsn: str, service: str, password: str) -> str:
    """`admin_dsn` with the service's role and password in place of the superuser's."""
    parts = urlsplit(admin_dsn)
    host = parts.hostname or ""
    netloc = f"{role_name(service)}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


async def provision(admin_dsn: str, passwords: dict[str, str]) -> dict[str, str]:
    """Create or update every service's role and schema; returns each service's DSN."""
    await db.ensure_database(admin_dsn)
    database = db.database_name(admin_dsn)
    conn = await asyncpg.connect(admin_dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            await conn.execute(f"REVOKE CONNECT, TEMPORARY ON DATABASE {_ident(database)} FROM PUBLIC")
            for service, password in passwords.items():
                await _service_role(conn, database, service, password)
            if "rag" in passwords:
                await _rag_tenant_role(conn)
    finally:
        await conn.close()
    return {service: service_dsn(admin_dsn, service, pw) for service, pw in passwords.items()}


async def _service_role(conn: asyncpg.Connection, database: str, service: str, password: str) -> None:
    role, schema = _ident(role_name(service)), _ident(SERVICE_SCHEMAS[service])
    exists = await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role_name(service))
    verb = "ALTER" if exists else "CREATE"
    # DDL takes no bind parameters; the password is quoted as a literal (it never reaches a log).
    await conn.execute(f"{verb} ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                       f"NOBYPASSRLS PASSWORD {_literal(password)}")
    await conn.execute(f"GRANT CONNECT ON DATABASE {_ident(database)} TO {role}")
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}")
    await conn.execute(f"ALTER SCHEMA {schema} OWNER TO {role}")
    # Tables (with their indexes and owned sequences), views and sequences made before roles
    # existed (as the superuser) pass to the service.
    rows = await conn.fetch(
        """SELECT c.relname, c.relkind::text AS relkind
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
             AND pg_get_userbyid(c.relowner) <> $2
             -- a serial's or identity's sequence goes with its table (and cannot go alone)
             AND NOT (c.relkind = 'S' AND EXISTS (
                 SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.deptype IN ('a', 'i')))""", SERVICE_SCHEMAS[service], role_name(service))
    kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
    for row in rows:
        await conn.execute(f"ALTER {kinds[row['relkind']]} {schema}.{_ident(row['relname'])} OWNER TO {role}")


async def _rag_tenant_role(conn: asyncpg.Connection) -> None:
    if not await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", RAG_TENANT_ROLE):
        await conn.execute(f"CREATE ROLE {RAG_TENANT_ROLE} NOLOGIN NOBYPASSRLS")
    await conn.execute(f"GRANT {RAG_TENANT_ROLE} TO {role_name('rag')}")


def provision_sync(admin_dsn: str, passwords: dict[str, str]) -> dict[str, str]:
    return asyncio.run(provision(admin_dsn, passwords))
