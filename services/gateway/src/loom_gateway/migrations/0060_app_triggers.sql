-- Triggers of workflow apps (domain/schedules.py, domain/webhooks.py): one schedule and one
-- webhook per app at most.

-- A schedule: a cron expression read in an IANA time zone. `next_fire_at` is the one tick a
-- scheduler may claim next; claiming it is moving it forward (compare-and-set), so of several
-- gateway replicas exactly one starts each tick's run.
CREATE TABLE IF NOT EXISTS app_schedules (
    app_id        text PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    cron          text NOT NULL,
    timezone      text NOT NULL,
    inputs        jsonb NOT NULL DEFAULT '{}',
    enabled       boolean NOT NULL DEFAULT true,
    next_fire_at  timestamptz NOT NULL,
    last_fired_at timestamptz,            -- the tick last claimed (the scheduler's clock)
    last_run_id   text,
    last_error    text,                   -- why the last fire started no run (unpublished, limits)
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS app_schedules_due ON app_schedules (next_fire_at) WHERE enabled;

-- A webhook: its public id is in its URL; its secret signs requests (HMAC-SHA256), so it is
-- kept sealed (Fernet, domain/sealing.py), not hashed: verifying needs the secret itself.
CREATE TABLE IF NOT EXISTS app_webhooks (
    app_id        text PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id            text NOT NULL UNIQUE,
    secret        bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    rotated_at    timestamptz NOT NULL DEFAULT now()
);

-- Signatures seen within the replay window: a request sent again, same timestamp and body,
-- is refused even while its timestamp is fresh. Rows older than the window are swept.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    signature     text PRIMARY KEY,
    webhook_id    text NOT NULL,
    seen_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_seen ON webhook_deliveries (seen_at);
