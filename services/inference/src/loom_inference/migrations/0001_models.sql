-- Models this node has pulled: the registry behind `llm-engine list` and /api/tags.
CREATE TABLE IF NOT EXISTS models (
    name        text PRIMARY KEY,
    backend     text NOT NULL,
    path        text,
    size_bytes  bigint,
    sha256      text,
    family      text,
    quantization text,
    pulled_at   timestamptz NOT NULL DEFAULT now()
);
