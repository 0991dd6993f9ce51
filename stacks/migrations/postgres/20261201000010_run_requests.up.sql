-- A run's events are numbered from its own counter, incremented in the transaction that
-- records the event: two writers never take one number, as MAX(seq) + 1 could.
ALTER TABLE runs ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0;
UPDATE runs SET event_seq = COALESCE((SELECT MAX(e.seq) FROM run_events e WHERE e.run_id = runs.id), 0);
-- A request of any kind joins the stack's latest run when that one is queued and of the same
-- kind (and plan), decided under a lock of the tenant's row: not only deploys coalesce, and a
-- deploy requested behind a queued destroy is a run of its own, so one queued deploy per
-- stack no longer holds.
DROP INDEX runs_one_queued_deploy;
