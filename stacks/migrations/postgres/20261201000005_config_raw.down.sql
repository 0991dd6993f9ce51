ALTER TABLE environment_configs DROP COLUMN raw;
