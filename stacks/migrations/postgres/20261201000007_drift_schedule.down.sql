DROP INDEX runs_schedule_slot;
ALTER TABLE runs DROP COLUMN schedule_slot;
