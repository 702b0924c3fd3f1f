-- A device's newest result of each check moves onto its `devices` row, as one JSON array
-- (`store/sqlite/latest.rs`): a report rewrote all of them, eleven rows spread over two or
-- three random pages of `latest_results`, and the devices row it updates anyway holds them
-- for no page of their own. The writer stores the array zstd-compressed (a BLOB); this
-- migration stores it as JSON text, which readers take as it is.
ALTER TABLE devices ADD COLUMN results TEXT;

UPDATE devices SET results = (
    SELECT json_group_array(json_object(
        'check', r.check_id,
        'status', r.status,
        'observed_at', r.observed_at,
        'report_id', r.report_id,
        'result', json(r.result)))
    FROM latest_results r WHERE r.device_id = devices.id)
WHERE id IN (SELECT device_id FROM latest_results);

-- What stays a row per device and check is what the admin filters and counts query: the
-- status, and the observation that brought it. The writer changes a row only when the
-- status changes, so the `(check_id, status)` index is left alone by most reports.
CREATE TABLE check_status (
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    check_id   TEXT NOT NULL,
    status     TEXT NOT NULL,
    since      TEXT NOT NULL,
    PRIMARY KEY (device_id, check_id)
) WITHOUT ROWID;

INSERT INTO check_status (device_id, check_id, status, since)
SELECT device_id, check_id, status, observed_at FROM latest_results;

DROP TABLE latest_results;
ALTER TABLE check_status RENAME TO latest_results;
CREATE INDEX latest_results_check_status ON latest_results (check_id, status);
