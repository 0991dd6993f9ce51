-- A run applies the config it started with, whatever is saved while it runs: pinned when it
-- first starts, read again by a resumed run.
ALTER TABLE runs ADD COLUMN config_version BIGINT;
ALTER TABLE runs ADD COLUMN config TEXT;
-- Where a deployed stack lives: recorded when its first deploy starts, cleared by a
-- successful destroy. Calls about its resources go there, whatever the config says now.
ALTER TABLE stacks ADD COLUMN region TEXT;
-- A preview records the state version it planned against; a deploy of an approved plan
-- names that preview and applies exactly its plan, if nothing changed since.
ALTER TABLE runs ADD COLUMN state_version BIGINT;
ALTER TABLE runs ADD COLUMN approved_plan TEXT;
