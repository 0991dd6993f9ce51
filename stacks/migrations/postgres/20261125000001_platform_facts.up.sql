-- Facts a worker learns at start-up (e.g. the platform account id from STS
-- GetCallerIdentity) or config sets, recorded for the API, which never calls AWS.
CREATE TABLE platform_facts (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
