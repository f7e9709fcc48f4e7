-- A chatflow conversation's variables as its latest finished turn left them (the orchestrator's
-- message_end carries them), for Dify's GET /v1/conversations/{id}/variables.
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS variables jsonb NOT NULL DEFAULT '{}';
-- When the run that wrote them was accepted: an older turn finishing late does not overwrite a newer one.
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS variables_at timestamptz;
