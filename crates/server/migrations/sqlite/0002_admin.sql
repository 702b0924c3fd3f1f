-- Issue 4: what the agent applied, who created secrets and tokens, the audit log, and the
-- indexes the admin device filters use.

-- The etag of the server policy the agent reported it applied, from the same report as the
-- other inventory columns (`inventory_at`).
ALTER TABLE devices ADD COLUMN applied_policy_etag TEXT;

ALTER TABLE enroll_secrets ADD COLUMN created_by TEXT;
ALTER TABLE api_tokens ADD COLUMN created_by TEXT;

-- Every admin change: who, what, when, and the thing before and after as JSON text (NULL
-- where it did not exist). Written in the same transaction as the change itself.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    before  TEXT,
    after   TEXT
);

CREATE INDEX audit_log_action ON audit_log (action, id);

CREATE INDEX devices_hostname ON devices (hostname, id);
CREATE INDEX latest_results_check_status ON latest_results (check_id, status);
CREATE INDEX reports_device ON reports (device_id, id);

-- What identity sources (Okta, Entra, Google, Duo, bulk import) say about each user, one row
-- per source and user. `user_key` is the lower-cased email, else the lower-cased login.
CREATE TABLE identities (
    source               TEXT NOT NULL,
    user_key             TEXT NOT NULL,
    email                TEXT,
    login                TEXT,
    mfa_enrolled         INTEGER,
    password_changed_at  TEXT,
    -- When the source last confirmed these facts.
    as_of                TEXT NOT NULL,
    PRIMARY KEY (source, user_key)
) WITHOUT ROWID;

CREATE INDEX identities_user ON identities (user_key, as_of);

-- Each configured source's last poll, for the admin's health view (shared by replicas).
CREATE TABLE identity_sources (
    name             TEXT PRIMARY KEY NOT NULL,
    kind             TEXT NOT NULL,
    last_run_at      TEXT,
    last_success_at  TEXT,
    last_error       TEXT,
    users            INTEGER
);

-- Suspicious messages users reported: the .eml as received, or a URL, with the user's note.
CREATE TABLE phishing_reports (
    id           TEXT PRIMARY KEY NOT NULL,
    -- What the user sees and can quote to IT (`PH-…`).
    tracking_id  TEXT NOT NULL UNIQUE,
    device_id    TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    received_at  TEXT NOT NULL,
    url          TEXT,
    note         TEXT,
    -- The message's Subject header, for the inbox view (untrusted text).
    subject      TEXT,
    message      BLOB
);

CREATE INDEX phishing_reports_received ON phishing_reports (received_at);
