-- One queued deploy per stack again: later queued deploys are cancelled.
UPDATE runs SET status = 'cancelled', cancel_requested = 1,
    finished_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
WHERE kind = 'deploy' AND status = 'queued'
  AND seq > (SELECT MIN(q.seq) FROM runs q WHERE q.stack = runs.stack AND q.kind = 'deploy' AND q.status = 'queued');
CREATE UNIQUE INDEX runs_one_queued_deploy ON runs (stack) WHERE kind = 'deploy' AND status = 'queued';
ALTER TABLE runs DROP COLUMN event_seq;
