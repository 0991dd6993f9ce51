-- A run the drift-check scheduler requested for one slot of its environment's schedule: the
-- slot's start (Unix ms). NULL for every other run. Unique per stack, so schedulers racing
-- for the same slot (several workers or servers) record one run.
ALTER TABLE runs ADD COLUMN schedule_slot INTEGER;
CREATE UNIQUE INDEX runs_schedule_slot ON runs (stack, schedule_slot);
