-- Workspace settings the console edits (issue 17), read on every use so a change takes effect
-- without a restart.

-- Remote model endpoints of a workspace (Dify's model providers): an OpenAI-compatible server
-- or an Ollama server. The API key is sealed with the gateway's Fernet key and never returned.
CREATE TABLE IF NOT EXISTS model_endpoints (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('openai', 'ollama')),
    base_url    text NOT NULL,
    api_key     bytea,               -- Fernet token; NULL = none
    api_key_hint text NOT NULL DEFAULT '',
    models      jsonb NOT NULL DEFAULT '[]',
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- One row per workspace: file storage and default models. NULL = the service's settings.
CREATE TABLE IF NOT EXISTS workspace_settings (
    tenant_id               text PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    storage                 jsonb,   -- {backend: local|s3, ...} without secrets
    storage_secret          bytea,   -- Fernet token of the S3 secret access key
    default_chat_model      text,
    default_embedding_model text,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
