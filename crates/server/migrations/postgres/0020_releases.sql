-- Agent releases for the updater, with their artifacts in the database: replicas share only
-- the database, so an artifact uploaded through one replica must be servable by all.
-- Artifacts are addressed by their SHA-256, so their URLs never change meaning.
CREATE TABLE release_artifacts (
    sha256      TEXT PRIMARY KEY,
    bytes       BYTEA NOT NULL,
    size        BIGINT NOT NULL
);

CREATE TABLE releases (
    id          BIGSERIAL PRIMARY KEY,
    channel     TEXT NOT NULL,
    target      TEXT NOT NULL,
    version     TEXT NOT NULL,
    -- The version's parts, so that "newest" is numeric order (0.10.0 after 0.9.0).
    v_major     BIGINT NOT NULL,
    v_minor     BIGINT NOT NULL,
    v_patch     BIGINT NOT NULL,
    signature   TEXT NOT NULL,
    notes       TEXT NOT NULL,
    sha256      TEXT NOT NULL REFERENCES release_artifacts (sha256),
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT NOT NULL,
    UNIQUE (channel, target, version)
);
CREATE INDEX releases_newest ON releases (channel, target, v_major, v_minor, v_patch);
CREATE INDEX releases_sha256 ON releases (sha256);

-- The channel each group's devices follow; a group without a row follows `stable`.
CREATE TABLE group_channels (
    group_name  TEXT PRIMARY KEY REFERENCES groups (name) ON DELETE CASCADE,
    channel     TEXT NOT NULL
);
