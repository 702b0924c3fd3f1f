-- A device's recent events are the ones it sent last, shown newest (by their own time)
-- first, rather than the ones its clock dated latest, as on SQLite (its migration 100): a
-- device whose clock ran ahead can no longer keep its old events at the top of its history.
CREATE INDEX events_device_id ON events (device_id, id);
DROP INDEX events_device_at;
