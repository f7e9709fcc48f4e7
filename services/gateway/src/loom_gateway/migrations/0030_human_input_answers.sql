-- Answers to human-input forms of paused runs, one per form: the first submission wins (a second
-- is a 409), and the row outlives restarts of the gateway. The orchestrator applies the answer
-- (it receives it with the run request that resumes the run); see domain/human_inputs.py.
CREATE TABLE IF NOT EXISTS human_input_answers (
    form_id      text PRIMARY KEY,
    tenant_id    text NOT NULL,
    app_id       text NOT NULL,
    run_id       text NOT NULL,
    node_id      text NOT NULL,
    action       text NOT NULL,
    inputs       jsonb NOT NULL,
    answered_by  text NOT NULL,   -- service-api:<end user> | console:<account id>
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS human_input_answers_run ON human_input_answers (tenant_id, run_id);
