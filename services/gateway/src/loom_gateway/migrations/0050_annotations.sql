-- Annotation reply (Dify's): an app's curated question/answer pairs. When the app's annotation
-- reply is enabled, a chat query whose embedding is close enough (cosine >= score_threshold) to
-- an annotated question is answered with the annotated answer and no model call
-- (domain/annotations.py). Embeddings are of the question, by the settings' embedding model.
CREATE TABLE IF NOT EXISTS app_annotations (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL,
    app_id           text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    question         text NOT NULL,
    answer           text NOT NULL,
    embedding        real[],             -- NULL until embedded (reply disabled, or a failed embed)
    embedding_model  text,
    hit_count        integer NOT NULL DEFAULT 0,
    created_by       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS app_annotations_app ON app_annotations (tenant_id, app_id, created_at DESC);

CREATE TABLE IF NOT EXISTS app_annotation_settings (
    app_id              text PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    tenant_id           text NOT NULL,
    enabled             boolean NOT NULL DEFAULT false,
    score_threshold     double precision NOT NULL CHECK (score_threshold >= 0 AND score_threshold <= 1),
    embedding_provider  text NOT NULL DEFAULT '',
    embedding_model     text NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Enable/disable is a job in Dify (embedding every annotation); here it finishes within the
-- request, and its row answers the job-status route.
CREATE TABLE IF NOT EXISTS app_annotation_jobs (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    app_id      text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    action      text NOT NULL CHECK (action IN ('enable', 'disable')),
    status      text NOT NULL CHECK (status IN ('waiting', 'processing', 'completed', 'error')),
    error       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Each annotation reply: which message it answered, from which annotation, how close.
CREATE TABLE IF NOT EXISTS app_annotation_hits (
    message_id     text PRIMARY KEY,
    tenant_id      text NOT NULL,
    app_id         text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    annotation_id  text NOT NULL REFERENCES app_annotations(id) ON DELETE CASCADE,
    question       text NOT NULL,
    score          double precision NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS app_annotation_hits_annotation ON app_annotation_hits (annotation_id, created_at DESC);
