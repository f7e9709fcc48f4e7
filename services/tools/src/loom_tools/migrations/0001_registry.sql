-- Per-tenant tool registry and the audit trail of every invocation.
CREATE TABLE IF NOT EXISTS tools (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    kind        text NOT NULL,
    parameters  jsonb NOT NULL DEFAULT '{}'::jsonb,
    config      jsonb NOT NULL DEFAULT '{}'::jsonb,
    credentials bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
CREATE TABLE IF NOT EXISTS invocations (
    id          bigserial PRIMARY KEY,
    tenant_id   text NOT NULL,
    tool        text NOT NULL,
    run_id      text,
    node_id     text,
    args_sha256 text NOT NULL,
    duration_ms double precision NOT NULL,
    outcome     text NOT NULL,
    error_code  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS invocations_tenant_time ON invocations (tenant_id, created_at DESC);
