"""The tools schema in Postgres: the per-tenant registry and the audit trail. The only layer of
the service that speaks SQL (import-linter forbids asyncpg to `loom_tools.domain`)."""
