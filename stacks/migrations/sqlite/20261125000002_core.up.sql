-- The durable records of byoc. Times are Unix milliseconds (INTEGER), JSON is TEXT: the
-- same column types on SQLite and Postgres keep one set of queries for both.

CREATE TABLE tenants (
    id                   TEXT PRIMARY KEY NOT NULL,
    slug                 TEXT NOT NULL UNIQUE,
    name                 TEXT NOT NULL,
    aws_account_id       TEXT NOT NULL,
    labels               TEXT NOT NULL DEFAULT '{}',
    onboarding_status    TEXT NOT NULL DEFAULT 'pending_trust',
    onboarding_message   TEXT,
    -- AES-256-GCM: nonce || ciphertext+tag. The plaintext is never stored.
    external_id_sealed   BLOB NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

CREATE TABLE environment_configs (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    env         TEXT NOT NULL,
    config      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, env)
);

CREATE TABLE stacks (
    name              TEXT PRIMARY KEY NOT NULL,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    env               TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'empty',
    state_version     INTEGER NOT NULL DEFAULT 0,
    lease_holder      TEXT,
    lease_expires_at  INTEGER,
    -- Fencing: +1 at every lease acquisition; writes of an older generation are refused.
    generation        INTEGER NOT NULL DEFAULT 0,
    updated_at        INTEGER NOT NULL,
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
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (stack, key)
);

CREATE TABLE journal (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    stack        TEXT NOT NULL REFERENCES stacks (name),
    run_id       TEXT NOT NULL,
    resource     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    operation    TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    token        TEXT NOT NULL,
    inputs       TEXT NOT NULL,
    -- intent: the call may have happened; succeeded / failed: its outcome is recorded.
    phase        TEXT NOT NULL,
    error        TEXT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
CREATE INDEX journal_pending ON journal (stack, phase);
CREATE INDEX journal_run ON journal (run_id);

CREATE TABLE runs (
    -- Global FIFO order of requests.
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    stack             TEXT NOT NULL REFERENCES stacks (name),
    kind              TEXT NOT NULL,
    status            TEXT NOT NULL,
    requested_by      TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    error             TEXT,
    plan              TEXT,
    summary           TEXT,
    cancel_requested  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_stack ON runs (stack, status);

CREATE TABLE run_events (
    run_id    TEXT NOT NULL REFERENCES runs (id),
    seq       INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    level     TEXT NOT NULL,
    resource  TEXT,
    message   TEXT NOT NULL,
    data      TEXT,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE state_history (
    stack    TEXT NOT NULL REFERENCES stacks (name),
    version  INTEGER NOT NULL,
    run_id   TEXT NOT NULL,
    at       INTEGER NOT NULL,
    changes  TEXT NOT NULL,
    PRIMARY KEY (stack, version)
);

CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    at       INTEGER NOT NULL,
    details  TEXT NOT NULL DEFAULT '{}'
);

-- A deploy requested while another is still queued for the stack coalesces into it.
CREATE UNIQUE INDEX runs_one_queued_deploy ON runs (stack) WHERE kind = 'deploy' AND status = 'queued';
