-- Reports were unique by (device_id, report_id), and that index, led by the device, put
-- every report at a random page of it (its device's): one of the three scattered pages a
-- report dirtied, written to the WAL at every commit and copied back with an fsync. Led by
-- the report id instead, the same uniqueness appends: agents make their ids as UUIDv7,
-- which grow with time. (An id of another kind still works, at a random page as before.)
--
-- What read the old order, a device's few newest reports (history, the console), now
-- follows a chain instead: each report names the device's report before it (`prev_id`),
-- and the device row names the newest (`last_report_id`, migration 80). Retention ends the
-- chain where it pruned.
--
-- SQLite cannot change a table's UNIQUE constraint, so the table is rebuilt. Nothing
-- refers to `reports` by a foreign key.
CREATE TABLE reports_chained (
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
    -- The row id of the device's report stored before this one; NULL for its first.
    prev_id        INTEGER,
    UNIQUE (report_id, device_id)
);

-- Each report's predecessor, worked out on the two narrow columns first: a window over the
-- whole rows sorted their bodies too: 44 s instead of 25 for a million reports of 1 kB on
-- the 2-core machine of BENCHMARKS.md, session 11.
CREATE TEMP TABLE report_chain (id INTEGER PRIMARY KEY, prev_id INTEGER);
INSERT INTO report_chain (id, prev_id)
SELECT id, LAG(id) OVER (PARTITION BY device_id ORDER BY id) FROM reports;

INSERT INTO reports_chained
    (id, device_id, report_id, received_at, sent_at, agent_version, body, prev_id)
SELECT r.id, r.device_id, r.report_id, r.received_at, r.sent_at, r.agent_version, r.body,
       c.prev_id
FROM reports r JOIN report_chain c ON c.id = r.id;
DROP TABLE report_chain;

-- Row ids are never handed out twice: the new table goes on from the old one's sequence,
-- which may be past its largest id still stored.
UPDATE sqlite_sequence
SET seq = MAX(seq, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'reports'), 0))
WHERE name = 'reports_chained';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'reports_chained', seq FROM sqlite_sequence
WHERE name = 'reports'
  AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'reports_chained');

DROP TABLE reports;
ALTER TABLE reports_chained RENAME TO reports;
CREATE INDEX reports_received_at ON reports (received_at);
