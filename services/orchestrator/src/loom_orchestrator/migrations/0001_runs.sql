-- Runs this service has accepted from the runs.requested work queue.
CREATE TABLE IF NOT EXISTS runs (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    app_id      text NOT NULL,
    status      text NOT NULL,
    request     jsonb NOT NULL,
    trace_id    text,
    deliveries  integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS runs_tenant ON runs (tenant_id, created_at DESC);
