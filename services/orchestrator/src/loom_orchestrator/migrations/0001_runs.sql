-- Runs this service has accepted from the runs.requested work queue, and their outcome.
CREATE TABLE IF NOT EXISTS runs (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL,
    app_id           text NOT NULL,
    status           text NOT NULL,  -- accepted | running | succeeded | partial-succeeded | failed | stopped
    request          jsonb NOT NULL,
    trace_id         text,
    deliveries       integer NOT NULL DEFAULT 1,
    worker           text,
    conversation_id  text,
    outputs          jsonb,
    answer           text,
    error            text,
    prompt_tokens    integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    total_steps      integer NOT NULL DEFAULT 0,
    elapsed_s        double precision,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX IF NOT EXISTS runs_tenant ON runs (tenant_id, created_at DESC);

-- One row per node execution (key = node id qualified by its iteration/loop round).
CREATE TABLE IF NOT EXISTS node_executions (
    run_id            text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key               text NOT NULL,
    tenant_id         text NOT NULL,
    node_id           text NOT NULL,
    node_type         text NOT NULL,
    idx               integer NOT NULL,
    status            text NOT NULL,  -- running | succeeded | exception | failed
    starts            integer NOT NULL DEFAULT 1,
    inputs            jsonb,
    process_data      jsonb,
    outputs           jsonb,
    edge_handle       text NOT NULL DEFAULT 'source',
    writes            jsonb,
    error             text,
    elapsed_ms        double precision,
    prompt_tokens     integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    PRIMARY KEY (run_id, key)
);

-- Chatflow memory: conversations, their messages (one per run) and conversation variables.
CREATE TABLE IF NOT EXISTS conversations (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    app_id      text NOT NULL,
    variables   jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS messages (
    id               text PRIMARY KEY,  -- the run id: one message per run, written once
    conversation_id  text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    tenant_id        text NOT NULL,
    query            text NOT NULL,
    answer           text NOT NULL,
    tokens           integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS messages_conversation ON messages (conversation_id, created_at);
