-- Each report entered the `reports_device (device_id, id)` index at a random page (its
-- device's), one of the handful of scattered pages a report dirties, all of them written to
-- the WAL at every commit and copied back into the database with an fsync. What read it:
-- a device's newest report (the detail view, and retention, which keeps it) and a device's
-- few newest reports (history, the console). The first is now the `devices` row's
-- `last_report_id`, set with the rest of the row the writer updates anyway; the second is
-- the `(device_id, report_id)` uniqueness index read for one device and sorted.
ALTER TABLE devices ADD COLUMN last_report_id INTEGER;

UPDATE devices SET last_report_id = (
    SELECT MAX(r.id) FROM reports r WHERE r.device_id = devices.id);

DROP INDEX reports_device;
