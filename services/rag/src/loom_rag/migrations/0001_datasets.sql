-- RAG schema: datasets -> documents -> segments, every row carrying tenant_id.
--
-- Vectors of any dimension live in ONE untyped `vector` column, with `embedding_dim` beside it;
-- each dimension in use gets its own partial HNSW index on the expression
-- `(embedding::vector(N))` WHERE embedding_dim = N (pgvector's HNSW needs a fixed dimension).
-- The 384-d index (the bundled all-minilm:l6-v2) is made here; others are made when a dataset
-- with a new dimension is created (store.schema.ensure_vector_index). See docs/rag.md.
--
-- Row-level security is a second wall behind the tenant_id filter every query has: the service
-- switches to role loom_rag_tenant inside tenant transactions, whose policies only show rows of
-- current_setting('loom.tenant_id'). Creating the role needs CREATEROLE; without it the
-- migration goes on and the service relies on its own filters (it logs that at start-up).

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'loom_rag_tenant') THEN
        CREATE ROLE loom_rag_tenant NOLOGIN;
    END IF;
EXCEPTION
    WHEN insufficient_privilege THEN RAISE NOTICE 'no CREATEROLE: row-level security role not created';
    WHEN duplicate_object OR unique_violation THEN NULL;  -- another database's migration won the race
END $$;

CREATE TABLE datasets (
    id                  uuid PRIMARY KEY,
    tenant_id           text NOT NULL,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description         text NOT NULL DEFAULT '',
    embedding_model     text NOT NULL,
    embedding_dim       integer NOT NULL CHECK (embedding_dim BETWEEN 1 AND 2000),
    process_rule        jsonb NOT NULL,       -- loom_rag.domain.chunking.ChunkingConfig
    search_method       text NOT NULL DEFAULT 'hybrid' CHECK (search_method IN ('vector', 'full_text', 'hybrid')),
    text_search_config  text NOT NULL DEFAULT 'english',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE documents (
    id                  uuid PRIMARY KEY,
    tenant_id           text NOT NULL,
    dataset_id          uuid NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    name                text NOT NULL,
    position            integer NOT NULL,
    data_source_type    text NOT NULL CHECK (data_source_type IN ('text', 'upload_file')),
    file_key            text NOT NULL,        -- raw bytes in the storage backend
    mime_type           text NOT NULL DEFAULT '',
    size_bytes          bigint NOT NULL DEFAULT 0,
    process_rule        jsonb NOT NULL,
    metadata            jsonb NOT NULL DEFAULT '{}',
    -- waiting -> parsing -> splitting -> indexing -> completed | error; paused = stopped by a user
    status              text NOT NULL DEFAULT 'waiting'
                        CHECK (status IN ('waiting', 'parsing', 'splitting', 'indexing', 'completed', 'error', 'paused')),
    progress            real NOT NULL DEFAULT 0,
    error               text,
    -- Bumped by every edit that needs re-indexing; a work item for an older revision is skipped.
    revision            integer NOT NULL DEFAULT 1,
    enabled             boolean NOT NULL DEFAULT true,
    word_count          integer NOT NULL DEFAULT 0,
    tokens              integer NOT NULL DEFAULT 0,
    segments_total      integer NOT NULL DEFAULT 0,
    segments_done       integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    processing_started_at timestamptz,
    completed_at        timestamptz
);
CREATE INDEX documents_dataset ON documents (tenant_id, dataset_id, position);

CREATE TABLE segments (
    -- uuid5(document, revision, position): re-indexing the same revision upserts, never duplicates.
    id                  uuid PRIMARY KEY,
    tenant_id           text NOT NULL,
    dataset_id          uuid NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    document_id         uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    revision            integer NOT NULL,
    position            integer NOT NULL,
    content             text NOT NULL,
    parent_content      text,                 -- parent-child chunking: the parent of this child
    word_count          integer NOT NULL DEFAULT 0,
    tokens              integer NOT NULL DEFAULT 0,
    enabled             boolean NOT NULL DEFAULT true,
    -- Copy of documents.enabled, so a search filters one table (kept in step by the store).
    document_enabled    boolean NOT NULL DEFAULT true,
    metadata            jsonb NOT NULL DEFAULT '{}',
    embedding_model     text NOT NULL,
    embedding_dim       integer NOT NULL,
    embedding           vector NOT NULL,
    tsv                 tsvector NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (vector_dims(embedding) = embedding_dim)
);
CREATE INDEX segments_document ON segments (document_id, position);
CREATE INDEX segments_dataset ON segments (tenant_id, dataset_id);
CREATE INDEX segments_tsv ON segments USING gin (tsv);
CREATE INDEX segments_metadata ON segments USING gin (metadata jsonb_path_ops);
CREATE INDEX segments_embedding_384 ON segments
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)
    WHERE embedding_dim = 384;

-- ---- row-level security (second wall) ---------------------------------------------------------

ALTER TABLE datasets ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE segments ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_only ON datasets USING (tenant_id = current_setting('loom.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('loom.tenant_id', true));
CREATE POLICY tenant_only ON documents USING (tenant_id = current_setting('loom.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('loom.tenant_id', true));
CREATE POLICY tenant_only ON segments USING (tenant_id = current_setting('loom.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('loom.tenant_id', true));

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'loom_rag_tenant') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO loom_rag_tenant', current_schema());
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I.datasets, %I.documents, %I.segments TO loom_rag_tenant',
                       current_schema(), current_schema(), current_schema());
    END IF;
END $$;
