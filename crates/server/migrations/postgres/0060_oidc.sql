-- Issue 7: OpenID Connect sign-in, PostgreSQL flavour of ../sqlite/0060_oidc.sql (same table
-- and meaning): which identity-provider account (issuer, subject) signs in as which console
-- account. Linked on the first sign-in whose verified email matches the username.
CREATE TABLE console_oidc_links (
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    admin_id   UUID NOT NULL REFERENCES console_admins (id) ON DELETE CASCADE,
    linked_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issuer, subject),
    -- One identity per provider and account: a second provider account whose email was
    -- reused cannot take over an account already linked.
    UNIQUE (issuer, admin_id)
);
