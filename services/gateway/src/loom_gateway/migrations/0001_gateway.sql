-- The gateway's own records: accounts, workspaces (tenants), apps, keys, user-facing
-- conversations/messages, runs as the gateway saw them, files, limits and the audit log.
CREATE TABLE IF NOT EXISTS setup_state (
    id          int PRIMARY KEY CHECK (id = 1),
    done_at     timestamptz NOT NULL DEFAULT now(),
    admin_id    text NOT NULL
);

CREATE TABLE IF NOT EXISTS accounts (
    id             text PRIMARY KEY,
    email          text NOT NULL UNIQUE,
    name           text NOT NULL,
    password_hash  text NOT NULL,
    is_admin       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz
);

CREATE TABLE IF NOT EXISTS tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    rpm_limit   int,               -- NULL = the service default
    tokens_per_day bigint,
    audit_retention_days int,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS members (
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    account_id  text NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    role        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account_id)
);

CREATE TABLE IF NOT EXISTS invitations (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    email       text NOT NULL,
    role        text NOT NULL,
    token_hash  text NOT NULL UNIQUE,
    invited_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz
);

CREATE TABLE IF NOT EXISTS refresh_tokens (
    id          text PRIMARY KEY,
    account_id  text NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

CREATE TABLE IF NOT EXISTS apps (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          text NOT NULL,
    mode          text NOT NULL,
    description   text NOT NULL DEFAULT '',
    icon          text NOT NULL DEFAULT '',
    draft         jsonb NOT NULL,
    published_version int,
    created_by    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS apps_tenant ON apps (tenant_id, created_at DESC);

CREATE TABLE IF NOT EXISTS app_versions (
    app_id        text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    tenant_id     text NOT NULL,
    version       int NOT NULL,
    dsl           jsonb NOT NULL,
    published_by  text,
    published_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, version)
);

CREATE TABLE IF NOT EXISTS api_keys (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('app', 'dataset')),
    app_id        text REFERENCES apps(id) ON DELETE CASCADE,
    key_hash      text NOT NULL UNIQUE,
    hint          text NOT NULL,
    name          text NOT NULL DEFAULT '',
    rpm_limit     int,
    tokens_per_day bigint,
    created_by    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz
);

CREATE TABLE IF NOT EXISTS end_users (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    app_id      text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    session_id  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, session_id)
);

CREATE TABLE IF NOT EXISTS conversations (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL,
    app_id       text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    end_user_id  text NOT NULL,
    name         text NOT NULL DEFAULT 'New conversation',
    inputs       jsonb NOT NULL DEFAULT '{}',
    status       text NOT NULL DEFAULT 'normal',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);
CREATE INDEX IF NOT EXISTS conversations_user ON conversations (app_id, end_user_id, updated_at DESC);

CREATE TABLE IF NOT EXISTS runs (
    id              text PRIMARY KEY,   -- also Dify's task_id and workflow_run_id
    tenant_id       text NOT NULL,
    app_id          text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    app_version     int,
    mode            text NOT NULL,
    end_user_id     text,
    conversation_id text,
    message_id      text,
    status          text NOT NULL DEFAULT 'running',
    inputs          jsonb NOT NULL DEFAULT '{}',
    outputs         jsonb,
    error           text,
    total_tokens    int NOT NULL DEFAULT 0,
    total_steps     int NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX IF NOT EXISTS runs_app ON runs (app_id, created_at DESC);

CREATE TABLE IF NOT EXISTS messages (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL,
    app_id           text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    conversation_id  text REFERENCES conversations(id) ON DELETE CASCADE,  -- NULL for completion apps
    run_id           text NOT NULL,
    end_user_id      text NOT NULL,
    query            text NOT NULL DEFAULT '',
    answer           text NOT NULL DEFAULT '',
    inputs           jsonb NOT NULL DEFAULT '{}',
    files            jsonb NOT NULL DEFAULT '[]',
    metadata         jsonb NOT NULL DEFAULT '{}',
    status           text NOT NULL DEFAULT 'running',
    error            text,
    feedback_rating  text,
    feedback_content text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS messages_conv ON messages (conversation_id, created_at);

CREATE TABLE IF NOT EXISTS files (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL,
    app_id       text,
    end_user_id  text,
    name         text NOT NULL,
    size         bigint NOT NULL,
    extension    text NOT NULL,
    mime_type    text NOT NULL,
    storage_key  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Fixed-window counters shared by every replica (rate limits per minute, tokens per day).
CREATE TABLE IF NOT EXISTS usage_counters (
    scope        text NOT NULL,     -- key:<id> | tenant:<id>
    metric       text NOT NULL,     -- requests | tokens
    window_start timestamptz NOT NULL,
    value        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, metric, window_start)
);

-- Append-only: the gateway's role may INSERT and SELECT; only the retention sweep deletes.
CREATE TABLE IF NOT EXISTS audit_log (
    id           bigserial PRIMARY KEY,
    tenant_id    text,
    actor_type   text NOT NULL,     -- account | app_key | dataset_key | anonymous
    actor_id     text,
    action       text NOT NULL,
    target_type  text,
    target_id    text,
    detail       jsonb NOT NULL DEFAULT '{}',
    ip           text,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS audit_tenant_at ON audit_log (tenant_id, at DESC);

CREATE OR REPLACE FUNCTION audit_log_no_update() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_no_update();
