-- The durable records of byoc. Times are Unix milliseconds (BIGINT), JSON is TEXT: the
-- same column types on SQLite and Postgres keep one set of queries for both.

CREATE TABLE tenants (
    id                   TEXT PRIMARY KEY,
    slug                 TEXT NOT NULL UNIQUE,
    name                 TEXT NOT NULL,
    aws_account_id       TEXT NOT NULL,
    labels               TEXT NOT NULL DEFAULT '{}',
    onboarding_status    TEXT NOT NULL DEFAULT 'pending_trust',
    onboarding_message   TEXT,
    -- AES-256-GCM: nonce || ciphertext+tag. The plaintext is never stored.
    external_id_sealed   BYTEA NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

CREATE TABLE environment_configs (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    env         TEXT NOT NULL,
    config      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, env)
);

CREATE TABLE stacks (
    name              TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    env               TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'empty',
    state_version     BIGINT NOT NULL DEFAULT 0,
    lease_holder      TEXT,
    lease_expires_at  BIGINT,
    -- Fencing: +1 at every lease acquisition; writes of an older generation are refused.
    generation        BIGINT NOT NULL DEFAULT 0,
    updated_at        BIGINT NOT NULL,
    UNIQUE (tenant_id, env)
);

CREATE TABLE resources (
    stack        TEXT NOT NULL REFERENCES stacks (name),
    key          TEXT NOT NULL,
    kind         TEXT NOT NULL,
    physical_id  TEXT NOT NULL,
    inputs       TEXT NOT NULL,
    outputs      TEXT NOT NULL,
    depends_on   TEXT NOT NULL,
    lifecycle    TEXT NOT NULL,
    status       TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (stack, key)
);

CREATE TABLE journal (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stack        TEXT NOT NULL REFERENCES stacks (name),
    run_id       TEXT NOT NULL,
    resource     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    operation    TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    token        TEXT NOT NULL,
    inputs       TEXT NOT NULL,
    -- intent: the call may have happened; succeeded / failed: its outcome is recorded.
    phase        TEXT NOT NULL,
    error        TEXT,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX journal_pending ON journal (stack, phase);
CREATE INDEX journal_run ON journal (run_id);

CREATE TABLE runs (
    -- Global FIFO order of requests.
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    stack             TEXT NOT NULL REFERENCES stacks (name),
    kind              TEXT NOT NULL,
    status            TEXT NOT NULL,
    requested_by      TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT,
    error             TEXT,
    plan              TEXT,
    summary           TEXT,
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX runs_stack ON runs (stack, status);

CREATE TABLE run_events (
    run_id    TEXT NOT NULL REFERENCES runs (id),
    seq       BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    level     TEXT NOT NULL,
    resource  TEXT,
    message   TEXT NOT NULL,
    data      TEXT,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE state_history (
    stack    TEXT NOT NULL REFERENCES stacks (name),
    version  BIGINT NOT NULL,
    run_id   TEXT NOT NULL,
    at       BIGINT NOT NULL,
    changes  TEXT NOT NULL,
    PRIMARY KEY (stack, version)
);

CREATE TABLE audit_log (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    at       BIGINT NOT NULL,
    details  TEXT NOT NULL DEFAULT '{}'
);

-- A deploy requested while another is still queued for the stack coalesces into it.
CREATE UNIQUE INDEX runs_one_queued_deploy ON runs (stack) WHERE kind = 'deploy' AND status = 'queued';
