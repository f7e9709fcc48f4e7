-- Dify's document archive: an archived document keeps its chunks but is not retrieved, and is
-- not the same as disabled (un-archiving leaves `enabled` as it was). Segments keep one flag for
-- search, document_enabled = enabled AND NOT archived (store.documents.set_status).
ALTER TABLE documents ADD COLUMN IF NOT EXISTS archived boolean NOT NULL DEFAULT false;
