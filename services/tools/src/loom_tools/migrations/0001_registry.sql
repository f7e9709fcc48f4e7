-- Per-tenant tool registry and the audit trail of every invocation.
CREATE TABLE IF NOT EXISTS tools (
    tenant_id   text NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    kind        text NOT NULL CHECK (kind IN ('http', 'openapi', 'sql', 'code')),
    parameters  jsonb NOT NULL DEFAULT '{"type": "object"}'::jsonb,
    config      jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Fernet token of the JSON credentials; never selected by a listing query.
    credentials bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);
CREATE TABLE IF NOT EXISTS invocations (
    id          bigserial PRIMARY KEY,
    tenant_id   text NOT NULL,
    tool        text NOT NULL,
    run_id      text NOT NULL DEFAULT '',
    node_id     text NOT NULL DEFAULT '',
    args_sha256 text NOT NULL,
    duration_ms double precision NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('ok', 'error')),
    error_code  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS invocations_tenant_time ON invocations (tenant_id, created_at DESC);
CREATE INDEX IF NOT EXISTS invocations_run ON invocations (run_id) WHERE run_id <> '';
