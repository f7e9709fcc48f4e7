-- Console runs (issue 17): where a run came from, and what the statistics read.
-- invoke_from: service-api (an app key's run), debugger (the console's draft run) or
-- single-node (the console's run of one node of the draft); Dify's names.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS invoke_from text NOT NULL DEFAULT 'service-api';
-- Time to first token: from the run's acceptance to the orchestrator's first answer text
-- (message / text_chunk event), set when the run's end is recorded; NULL for runs without text.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS first_token_ms int;
-- Statistics read a workspace's runs by day.
CREATE INDEX IF NOT EXISTS runs_tenant_created ON runs (tenant_id, created_at);
