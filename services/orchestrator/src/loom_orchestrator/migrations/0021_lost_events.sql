-- Why a run must fail although its work may all be done: a delivery gave up on some of the run's
-- events (the bus did not store them by the run's deadline). Written before the run's outcome is
-- published, so a redelivery (the outcome could not be published either) fails the run with this
-- reason instead of replaying it from the journal to a "success" whose events no reader can see.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS lost_events text;
