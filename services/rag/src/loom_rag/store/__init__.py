"""Postgres access for the rag schema: one module per table, plus search and tenancy.

Every statement names tenant_id in its WHERE clause; `tenancy.TenantDb` additionally runs
tenant work as role loom_rag_tenant under row-level security (a second wall).
"""
