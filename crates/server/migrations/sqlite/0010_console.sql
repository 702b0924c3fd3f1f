-- Issue 7: the IT console. Admin accounts that sign in with a password and a TOTP code,
-- their sessions, the compliance history behind the overview's trend chart, and the triage
-- state of phishing reports.

-- People who sign in to the console. `password_hash` is an argon2id PHC string; the TOTP
-- secret is kept as given (a shared secret cannot be hashed: the server must compute codes).
CREATE TABLE console_admins (
    id               TEXT PRIMARY KEY NOT NULL,
    username         TEXT NOT NULL UNIQUE,
    role             TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    password_hash    TEXT NOT NULL,
    totp_secret      TEXT NOT NULL,
    -- The last TOTP time step accepted, so that a code cannot be used twice.
    totp_last_step   INTEGER NOT NULL DEFAULT 0,
    failed_attempts  INTEGER NOT NULL DEFAULT 0,
    locked_until     TEXT,
    created_at       TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    last_login_at    TEXT,
    disabled_at      TEXT
);

-- Signed-in browsers. Only the SHA-256 of the cookie's value is stored.
CREATE TABLE console_sessions (
    token_hash    BLOB PRIMARY KEY NOT NULL,
    admin_id      TEXT NOT NULL REFERENCES console_admins (id) ON DELETE CASCADE,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);

CREATE INDEX console_sessions_admin ON console_sessions (admin_id);

-- When each device's check was first seen failing (warn or fail) in its current streak,
-- kept by the console's refresh so that "due" and "overdue" follow from the group's grace.
CREATE TABLE console_failing_since (
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    check_id   TEXT NOT NULL,
    since      TEXT NOT NULL,
    PRIMARY KEY (device_id, check_id)
) WITHOUT ROWID;

-- One row per day and check: the fleet's counts that day (the last refresh of the day wins).
CREATE TABLE console_compliance_daily (
    day       TEXT NOT NULL,
    check_id  TEXT NOT NULL,
    pass      INTEGER NOT NULL,
    due       INTEGER NOT NULL,
    overdue   INTEGER NOT NULL,
    unknown   INTEGER NOT NULL,
    PRIMARY KEY (day, check_id)
) WITHOUT ROWID;

-- IT's triage of a phishing report and the reply the reporter sees.
CREATE TABLE console_phishing_triage (
    report_id   TEXT PRIMARY KEY NOT NULL REFERENCES phishing_reports (id) ON DELETE CASCADE,
    status      TEXT NOT NULL,
    reply       TEXT,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT NOT NULL
);
