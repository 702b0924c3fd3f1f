-- Issue 7: OpenID Connect sign-in to the console. An identity-provider account (issuer and
-- subject) signs in as the existing console account it is linked to; the link is made on the
-- first sign-in whose verified email matches the account's username. Roles stay local.
CREATE TABLE console_oidc_links (
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    admin_id   TEXT NOT NULL REFERENCES console_admins (id) ON DELETE CASCADE,
    linked_at  TEXT NOT NULL,
    PRIMARY KEY (issuer, subject),
    -- One identity per provider and account: a second provider account whose email was
    -- reused cannot take over an account already linked.
    UNIQUE (issuer, admin_id)
);
