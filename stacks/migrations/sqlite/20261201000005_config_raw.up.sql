-- The config as the caller sent it; `config` holds it with the defaults filled in. NULL: saved
-- before both were kept (config is both).
ALTER TABLE environment_configs ADD COLUMN raw TEXT;
