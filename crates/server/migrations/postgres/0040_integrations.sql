-- Identity sources and webhooks configured from the IT console (issue 7), next to the ones
-- read from the server's files. The secrets they hold are stored as given because the
-- server must present them to the vendor (or sign with them); the console never shows
-- them back and the audit log records them redacted.
CREATE TABLE identity_source_configs (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    -- The source's whole configuration as JSON (`SourceConfig`), secrets included.
    config      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    updated_by  TEXT NOT NULL
);

-- When each source (from a file or the console) is next due. A replica claims a poll by
-- moving this forward in one conditional statement, so only one replica polls it.
ALTER TABLE identity_sources ADD COLUMN next_poll_at TIMESTAMPTZ;

CREATE TABLE webhook_configs (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    -- The hook as JSON (`WebhookConfig`: url, format, events, secret).
    config      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    updated_by  TEXT NOT NULL
);
