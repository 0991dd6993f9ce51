-- The desired resources a run planned first (its blueprint's output for its pinned config):
-- a run resumed by another worker (another byoc version) applies exactly those.
ALTER TABLE runs ADD COLUMN desired TEXT;
