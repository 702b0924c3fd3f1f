-- Tandem server schema, PostgreSQL flavour: the same tables and meanings as ../sqlite, in
-- native types (TIMESTAMPTZ, UUID, BYTEA). JSON documents stay TEXT so that both backends
-- hand back exactly what they were given (JSONB would reorder keys and drop duplicates, and
-- the raw report must be kept verbatim). Secrets are never stored: only the SHA-256 of each
-- token or enrolment secret.

CREATE TABLE groups (
    name        TEXT PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every device falls back to this group's policy, so it must always exist.
INSERT INTO groups (name) VALUES ('default');

CREATE TABLE devices (
    id                   UUID PRIMARY KEY,
    -- An app-specific hash of the OS machine id, as the agent sends it (untrusted).
    -- Re-enrolling the same machine id reuses the device row.
    machine_id           TEXT NOT NULL UNIQUE,
    group_name           TEXT NOT NULL REFERENCES groups (name),
    hostname             TEXT NOT NULL,
    os                   TEXT NOT NULL,
    os_version           TEXT NOT NULL,
    model                TEXT,
    serial               TEXT,
    user_login           TEXT NOT NULL,
    user_email           TEXT,
    agent_version        TEXT,
    enrolled_at          TIMESTAMPTZ NOT NULL,
    -- Server time of the newest accepted report.
    last_report_at       TIMESTAMPTZ,
    -- `sent_at` of the report the inventory columns came from, so that an old report
    -- delivered late from an agent's outbox cannot overwrite newer facts.
    inventory_at         TIMESTAMPTZ,
    -- The policy version last handed to this device.
    policy_version       BIGINT,
    -- The etag of the policy the agent says it applied (from the `inventory_at` report).
    applied_policy_etag  TEXT,
    revoked_at           TIMESTAMPTZ
);

CREATE INDEX devices_group ON devices (group_name);
CREATE INDEX devices_hostname ON devices (hostname, id);

CREATE TABLE device_tokens (
    token_hash  BYTEA PRIMARY KEY,
    device_id   UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

CREATE INDEX device_tokens_device ON device_tokens (device_id);

CREATE TABLE enroll_secrets (
    id           UUID PRIMARY KEY,
    secret_hash  BYTEA NOT NULL UNIQUE,
    group_name   TEXT NOT NULL REFERENCES groups (name),
    created_at   TIMESTAMPTZ NOT NULL,
    created_by   TEXT,
    expires_at   TIMESTAMPTZ,
    max_uses     BIGINT CHECK (max_uses IS NULL OR max_uses > 0),
    uses         BIGINT NOT NULL DEFAULT 0,
    revoked_at   TIMESTAMPTZ
);

-- Immutable policy versions. `id` orders rows for the change feed's catch-up.
CREATE TABLE policies (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_name  TEXT NOT NULL REFERENCES groups (name),
    version     BIGINT NOT NULL CHECK (version > 0),
    -- The document as IT wrote it; the agent fills in what it leaves out.
    body        TEXT NOT NULL,
    etag        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT NOT NULL,
    UNIQUE (group_name, version)
);

-- Every replica LISTENs on `tandem_policy`: a version stored by any process (a replica, the
-- CLI) wakes the long-polls of all of them. NOTIFY is delivered on commit, so listeners never
-- hear of a version they cannot read yet.
CREATE FUNCTION tandem_notify_policy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'tandem_policy',
        json_build_object('group', NEW.group_name, 'version', NEW.version)::text
    );
    RETURN NEW;
END
$$;

CREATE TRIGGER policies_notify AFTER INSERT ON policies
    FOR EACH ROW EXECUTE FUNCTION tandem_notify_policy();

CREATE TABLE reports (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id      UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    -- The agent's idempotency key, unique per device so that one device can never suppress
    -- another's report by reusing its id.
    report_id      UUID NOT NULL,
    received_at    TIMESTAMPTZ NOT NULL,
    sent_at        TIMESTAMPTZ NOT NULL,
    agent_version  TEXT NOT NULL,
    -- The request body exactly as received.
    body           TEXT NOT NULL,
    UNIQUE (device_id, report_id)
);

CREATE INDEX reports_received_at ON reports (received_at);
CREATE INDEX reports_device ON reports (device_id, id);

CREATE TABLE latest_results (
    device_id    UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    check_id     TEXT NOT NULL,
    status       TEXT NOT NULL,
    observed_at  TIMESTAMPTZ NOT NULL,
    -- The whole `CheckResult` as JSON.
    result       TEXT NOT NULL,
    report_id    UUID NOT NULL,
    PRIMARY KEY (device_id, check_id)
);

CREATE INDEX latest_results_check_status ON latest_results (check_id, status);

-- Events outlive the raw reports they came in, so they refer to the report by its id.
CREATE TABLE events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id  UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    report_id  UUID NOT NULL,
    kind       TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    check_id   TEXT,
    detail     TEXT
);

CREATE INDEX events_device_at ON events (device_id, at);

CREATE TABLE api_tokens (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT,
    revoked_at  TIMESTAMPTZ
);

-- The Ed25519 key that signs policies, shared by every replica.
CREATE TABLE server_keys (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    algorithm    TEXT NOT NULL,
    private_key  BYTEA NOT NULL,
    public_key   BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

-- Every admin change, written in the same transaction as the change.
CREATE TABLE audit_log (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    before  TEXT,
    after   TEXT
);

CREATE INDEX audit_log_action ON audit_log (action, id);

-- What identity sources say about each user, one row per source and user. `user_key` is the
-- lower-cased email, else the lower-cased login.
CREATE TABLE identities (
    source               TEXT NOT NULL,
    user_key             TEXT NOT NULL,
    email                TEXT,
    login                TEXT,
    mfa_enrolled         BOOLEAN,
    password_changed_at  TIMESTAMPTZ,
    as_of                TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, user_key)
);

CREATE INDEX identities_user ON identities (user_key, as_of);

-- Each configured source's last poll, for the admin's health view (shared by replicas).
CREATE TABLE identity_sources (
    name             TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    last_run_at      TIMESTAMPTZ,
    last_success_at  TIMESTAMPTZ,
    last_error       TEXT,
    users            BIGINT
);

-- Suspicious messages users reported: the .eml as received, or a URL, with the user's note.
CREATE TABLE phishing_reports (
    id           UUID PRIMARY KEY,
    tracking_id  TEXT NOT NULL UNIQUE,
    device_id    UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    received_at  TIMESTAMPTZ NOT NULL,
    url          TEXT,
    note         TEXT,
    subject      TEXT,
    message      BYTEA
);

CREATE INDEX phishing_reports_received ON phishing_reports (received_at);
