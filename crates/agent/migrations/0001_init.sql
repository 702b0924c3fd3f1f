-- The agent's local state. One file per user, in the user's data dir.

-- Small named values: enrolment, the policy in force, sync bookkeeping.
CREATE TABLE kv (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- Reports waiting for the server's acknowledgement (at-least-once delivery).
CREATE TABLE outbox (
    report_id  TEXT PRIMARY KEY NOT NULL,
    created_at TEXT NOT NULL,
    body       TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0
);

-- Every check result, for history and first-seen times.
CREATE TABLE results (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    check_id    TEXT NOT NULL,
    status      TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX results_by_check ON results (check_id, id);

-- Events (nudges, policy changes) not yet sent in a report.
CREATE TABLE pending_events (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL
);
