-- Token quotas are reserved at admission and settled at the end (domain/limits.py). A run's
-- reservation waits here for whoever records the run's end, on any replica.
CREATE TABLE IF NOT EXISTS token_reservations (
    run_id      text PRIMARY KEY,
    key_id      text NOT NULL,
    tenant_id   text NOT NULL,
    day         timestamptz NOT NULL,     -- the UTC day whose counters hold the tokens
    tokens      bigint NOT NULL,
    scopes      text[] NOT NULL,          -- the counters they were added to (key:<id>, tenant:<id>)
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A key's limits: NULL = the service default (rpm) or none of its own (tokens), a number >= 1,
-- or, for the rate, unlimited as an explicit flag that only the owner sets. 0 used to mean
-- unlimited, and an editor could set it: such rows become what they meant.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS rpm_unlimited boolean NOT NULL DEFAULT false;
UPDATE api_keys SET rpm_unlimited = true, rpm_limit = NULL WHERE rpm_limit = 0;
UPDATE api_keys SET tokens_per_day = NULL WHERE tokens_per_day = 0;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_rpm_limit_positive CHECK (rpm_limit IS NULL OR rpm_limit >= 1);
ALTER TABLE api_keys ADD CONSTRAINT api_keys_tokens_per_day_positive
    CHECK (tokens_per_day IS NULL OR tokens_per_day >= 1);
