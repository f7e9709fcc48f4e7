-- Conversation variables a client set through the API (Dify's PUT .../variables/{id}) that no
-- turn has taken up yet: sent with the conversation's next run request, which overrides the
-- orchestrator's kept values with them; cleared once a turn that started after them finishes.
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS variables_set jsonb;
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS variables_set_at timestamptz;
