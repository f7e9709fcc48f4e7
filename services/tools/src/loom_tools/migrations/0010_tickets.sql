-- Support tickets written by the built-in `tickets.create` tool (loom_tools/tickets.py), per tenant.
CREATE TABLE IF NOT EXISTS tickets (
    id          bigserial PRIMARY KEY,
    tenant_id   text NOT NULL,
    subject     text NOT NULL,
    category    text NOT NULL,
    priority    text NOT NULL,
    summary     text NOT NULL,
    customer    text NOT NULL,
    status      text NOT NULL DEFAULT 'open',
    run_id      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS tickets_tenant_time ON tickets (tenant_id, created_at DESC);
