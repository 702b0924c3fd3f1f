-- Issue 7: the IT console, PostgreSQL flavour of ../sqlite/0010_console.sql (same tables and
-- meanings): admin accounts with a password and a TOTP second factor, their sessions, the
-- compliance history behind the overview's trend chart, and phishing triage.

CREATE TABLE console_admins (
    id               UUID PRIMARY KEY,
    username         TEXT NOT NULL UNIQUE,
    role             TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    -- An argon2id PHC string.
    password_hash    TEXT NOT NULL,
    -- Kept as given: the server must compute codes from it.
    totp_secret      TEXT NOT NULL,
    -- The last TOTP time step accepted, so that a code cannot be used twice.
    totp_last_step   BIGINT NOT NULL DEFAULT 0,
    failed_attempts  INTEGER NOT NULL DEFAULT 0,
    locked_until     TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    created_by       TEXT NOT NULL,
    last_login_at    TIMESTAMPTZ,
    disabled_at      TIMESTAMPTZ
);

-- Signed-in browsers. Only the SHA-256 of the cookie's value is stored.
CREATE TABLE console_sessions (
    token_hash  BYTEA PRIMARY KEY,
    admin_id    UUID NOT NULL REFERENCES console_admins (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX console_sessions_admin ON console_sessions (admin_id);

-- When each device's check was first seen failing (warn or fail) in its current streak.
CREATE TABLE console_failing_since (
    device_id  UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    check_id   TEXT NOT NULL,
    since      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (device_id, check_id)
);

-- One row per day and check: the fleet's counts that day (the last refresh of the day wins).
CREATE TABLE console_compliance_daily (
    day       DATE NOT NULL,
    check_id  TEXT NOT NULL,
    pass      BIGINT NOT NULL,
    due       BIGINT NOT NULL,
    overdue   BIGINT NOT NULL,
    unknown   BIGINT NOT NULL,
    PRIMARY KEY (day, check_id)
);

-- IT's triage of a phishing report and the reply the reporter sees.
CREATE TABLE console_phishing_triage (
    report_id   UUID PRIMARY KEY REFERENCES phishing_reports (id) ON DELETE CASCADE,
    status      TEXT NOT NULL,
    reply       TEXT,
    updated_at  TIMESTAMPTZ NOT NULL,
    updated_by  TEXT NOT NULL
);
