-- Facts a worker learns at start-up (e.g. the platform account id from STS
-- GetCallerIdentity) or config sets, recorded for the API, which never calls AWS.
CREATE TABLE platform_facts (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
