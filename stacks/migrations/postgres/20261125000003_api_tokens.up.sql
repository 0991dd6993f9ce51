-- Bearer tokens of the API. Only the SHA-256 of a token's secret is stored: a leaked
-- database does not leak usable tokens.
CREATE TABLE api_tokens (
    -- The public part of the token text `byoc_{id}_{secret}`: 16 hex digits.
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    -- NULL: an admin token.
    tenant_id     TEXT REFERENCES tenants (id),
    -- Hex SHA-256 of the secret.
    secret_hash   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id);

-- Tenants are listed by slug with a slug cursor: byte order, as on SQLite, whatever the
-- database's locale.
ALTER TABLE tenants ALTER COLUMN slug TYPE TEXT COLLATE "C";
