ALTER TABLE tenants ALTER COLUMN slug TYPE TEXT COLLATE "default";
DROP TABLE api_tokens;
