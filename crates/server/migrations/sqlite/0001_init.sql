-- Tandem server schema, SQLite flavour. A PostgreSQL backend gets its own migrations in
-- ../postgres, with the same tables and meanings.
--
-- Timestamps are TEXT in one fixed RFC 3339 shape (`2024-05-01T12:00:00.000000Z`, always UTC,
-- always six fractional digits) so that comparing the strings compares the instants.
-- UUIDs are TEXT in their hyphenated form. Secrets are never stored: only the SHA-256 of each
-- token or enrolment secret, as a 32-byte BLOB.

CREATE TABLE groups (
    name        TEXT PRIMARY KEY NOT NULL,
    created_at  TEXT NOT NULL
);

-- Every device falls back to this group's policy, so it must always exist.
INSERT INTO groups (name, created_at)
VALUES ('default', strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));

CREATE TABLE devices (
    id              TEXT PRIMARY KEY NOT NULL,
    -- An app-specific hash of the OS machine id, as the agent sends it (untrusted).
    -- Re-enrolling the same machine id reuses the device row.
    machine_id      TEXT NOT NULL UNIQUE,
    group_name      TEXT NOT NULL REFERENCES groups (name),
    hostname        TEXT NOT NULL,
    os              TEXT NOT NULL,
    os_version      TEXT NOT NULL,
    model           TEXT,
    serial          TEXT,
    user_login      TEXT NOT NULL,
    user_email      TEXT,
    agent_version   TEXT,
    enrolled_at     TEXT NOT NULL,
    -- Server time of the newest accepted report.
    last_report_at  TEXT,
    -- `sent_at` of the report the inventory columns above came from, so that an old report
    -- delivered late from an agent's outbox cannot overwrite newer facts.
    inventory_at    TEXT,
    -- The policy version last handed to this device.
    policy_version  INTEGER,
    revoked_at      TEXT
);

CREATE INDEX devices_group ON devices (group_name);

CREATE TABLE device_tokens (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    device_id   TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

CREATE INDEX device_tokens_device ON device_tokens (device_id);

CREATE TABLE enroll_secrets (
    id           TEXT PRIMARY KEY NOT NULL,
    secret_hash  BLOB NOT NULL UNIQUE,
    group_name   TEXT NOT NULL REFERENCES groups (name),
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    max_uses     INTEGER CHECK (max_uses IS NULL OR max_uses > 0),
    uses         INTEGER NOT NULL DEFAULT 0,
    revoked_at   TEXT
);

-- Immutable policy versions. `id` only orders rows for the change feed that wakes long-polls
-- when another process (the CLI, another server) adds a version.
CREATE TABLE policies (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    group_name  TEXT NOT NULL REFERENCES groups (name),
    version     INTEGER NOT NULL CHECK (version > 0),
    -- The document as IT wrote it; the agent fills in what it leaves out.
    body        TEXT NOT NULL,
    etag        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    UNIQUE (group_name, version)
);

CREATE TABLE reports (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id      TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    -- The agent's idempotency key. Unique per device, so that one device can never
    -- suppress another's report by reusing its id.
    report_id      TEXT NOT NULL,
    received_at    TEXT NOT NULL,
    sent_at        TEXT NOT NULL,
    agent_version  TEXT NOT NULL,
    -- The request body exactly as received.
    body           TEXT NOT NULL,
    UNIQUE (device_id, report_id)
);

CREATE INDEX reports_received_at ON reports (received_at);

CREATE TABLE latest_results (
    device_id    TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    check_id     TEXT NOT NULL,
    status       TEXT NOT NULL,
    observed_at  TEXT NOT NULL,
    -- The whole `CheckResult` as JSON.
    result       TEXT NOT NULL,
    report_id    TEXT NOT NULL,
    PRIMARY KEY (device_id, check_id)
) WITHOUT ROWID;

-- Events outlive the raw reports they came in (reports are pruned after a retention period),
-- so they refer to the report by its id rather than by a foreign key.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    report_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    at         TEXT NOT NULL,
    check_id   TEXT,
    detail     TEXT
);

CREATE INDEX events_device_at ON events (device_id, at);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    token_hash    BLOB NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT
);

-- The Ed25519 key that signs policies. One row: agents pin its public half at enrolment,
-- so it must survive restarts and be shared by every replica.
CREATE TABLE server_keys (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    algorithm    TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    public_key   BLOB NOT NULL,
    created_at   TEXT NOT NULL
);
