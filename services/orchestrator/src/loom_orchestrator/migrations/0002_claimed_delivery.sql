-- Fencing by delivery number: the highest JetStream delivery of runs.requested that claimed
-- the run. A claim by a lower-numbered (stale) delivery is refused (see store._CLAIM).
ALTER TABLE runs ADD COLUMN IF NOT EXISTS claimed_delivery integer NOT NULL DEFAULT 0;
