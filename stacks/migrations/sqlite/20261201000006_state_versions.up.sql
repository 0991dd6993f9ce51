-- The full state of a stack at each state version: its resources (a JSON array of resource
-- records: key, kind, physical id, status, inputs, outputs) as they were when the run that
-- made the version recorded it, written in the transaction that adds the version. Versions
-- recorded before this table existed have no row.
CREATE TABLE state_versions (
    stack      TEXT NOT NULL,
    version    INTEGER NOT NULL,
    resources  TEXT NOT NULL,
    PRIMARY KEY (stack, version),
    FOREIGN KEY (stack, version) REFERENCES state_history (stack, version)
);
