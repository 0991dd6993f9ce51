ALTER TABLE runs DROP COLUMN approved_plan;
ALTER TABLE runs DROP COLUMN state_version;
ALTER TABLE stacks DROP COLUMN region;
ALTER TABLE runs DROP COLUMN config;
ALTER TABLE runs DROP COLUMN config_version;
