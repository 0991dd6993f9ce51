-- Bearer tokens of the API. Only the SHA-256 of a token's secret is stored: a leaked
-- database does not leak usable tokens.
CREATE TABLE api_tokens (
    -- The public part of the token text `byoc_{id}_{secret}`: 16 hex digits.
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    -- NULL: an admin token.
    tenant_id     TEXT REFERENCES tenants (id),
    -- Hex SHA-256 of the secret.
    secret_hash   TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id);
