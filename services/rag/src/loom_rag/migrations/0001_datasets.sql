-- Datasets of a tenant; documents and segments come with the RAG service's ingestion.
CREATE TABLE IF NOT EXISTS datasets (
    id              uuid PRIMARY KEY,
    tenant_id       text NOT NULL,
    name            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    embedding_model text NOT NULL,
    embedding_dim   integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
