-- Knowledge metadata fields and tags (Dify's metadata and tag APIs for datasets). The rag service
-- owns datasets and documents, and keeps each document's metadata VALUES (what retrieval filters
-- on); the gateway keeps what the API adds around them: the fields a dataset declares (name,
-- type), its built-in-fields switch, and the workspace's tags and their bindings to datasets.
-- dataset_id / target_id name a rag dataset; the routes check it exists in the workspace first.
CREATE TABLE IF NOT EXISTS dataset_metadata_fields (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    dataset_id  text NOT NULL,
    name        text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,254}$'),
    type        text NOT NULL CHECK (type IN ('string', 'number', 'time')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, dataset_id, name)
);

CREATE TABLE IF NOT EXISTS dataset_metadata_settings (
    dataset_id        text PRIMARY KEY,
    tenant_id         text NOT NULL,
    built_in_enabled  boolean NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS knowledge_tags (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 50),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE IF NOT EXISTS knowledge_tag_bindings (
    tag_id      text NOT NULL REFERENCES knowledge_tags(id) ON DELETE CASCADE,
    tenant_id   text NOT NULL,
    target_id   text NOT NULL,          -- a rag dataset id
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tag_id, target_id)
);
CREATE INDEX IF NOT EXISTS knowledge_tag_bindings_target ON knowledge_tag_bindings (tenant_id, target_id);
