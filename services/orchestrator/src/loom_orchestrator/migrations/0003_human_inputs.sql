-- Paused runs (human-input forms). A paused run holds no worker and no JetStream message: its
-- state is its journal plus these rows, and an answer or a timeout resumes it with a new request.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS paused_at timestamptz;
-- Time spent paused so far: the run's wall-time limit counts only its work.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS paused_s double precision NOT NULL DEFAULT 0;
-- The form whose answer (or timeout) the run was last taken up again for: a redelivery of that
-- resume request may claim the running run again, any other resume request may not.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS resumed_for text;

CREATE TABLE IF NOT EXISTS human_inputs (
    form_id      text PRIMARY KEY,          -- the node execution's id (RunContext.execution_id)
    run_id       text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    tenant_id    text NOT NULL,
    node_key     text NOT NULL,
    node_id      text NOT NULL,
    form         jsonb NOT NULL,            -- fields, actions, rendered content (for operators)
    status       text NOT NULL DEFAULT 'pending',  -- pending | answered | timed_out
    deadline     timestamptz,               -- NULL: waits for ever
    answer       jsonb,                     -- values submitted
    action       text,                      -- the branch taken
    answered_by  text,
    answered_at  timestamptz,
    timer_sent_at timestamptz,              -- when the timer last asked for the timeout's resume
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS human_inputs_run ON human_inputs (run_id);
-- The timer's scan: pending forms by deadline.
CREATE INDEX IF NOT EXISTS human_inputs_due ON human_inputs (deadline) WHERE status = 'pending' AND deadline IS NOT NULL;
