-- Which "device became overdue" webhooks were sent: one row per device × check × deadline,
-- claimed by the first replica to notice, so a notice goes out exactly once.
CREATE TABLE overdue_notices (
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    check_id   TEXT NOT NULL,
    deadline   TEXT NOT NULL,
    sent_at    TEXT NOT NULL,
    PRIMARY KEY (device_id, check_id, deadline)
);
