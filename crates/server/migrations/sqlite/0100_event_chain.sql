-- Events were indexed by (device_id, at), which put each at a random page of the index (its
-- device's): after migration 90 the last of the scattered pages a report dirtied besides its
-- device's row. The one thing that read the index, a device's recent events, now follows a
-- chain as its recent reports do: each event names the device's event stored before it
-- (`prev_id`), and the device row names the newest (`last_event_id`).
--
-- A device's recent events are thereby the ones it sent last, shown newest (by their own
-- time) first, rather than the ones its clock dated latest: a device whose clock ran ahead
-- can no longer keep its old events at the top of its history.
ALTER TABLE events ADD COLUMN prev_id INTEGER;
ALTER TABLE devices ADD COLUMN last_event_id INTEGER;

-- Each event's predecessor, in the order they were stored. Through a table keyed by the
-- event's id, so that filling the column is a lookup per event rather than a search.
CREATE TEMP TABLE event_chain (id INTEGER PRIMARY KEY, prev_id INTEGER);
INSERT INTO event_chain (id, prev_id)
SELECT id, LAG(id) OVER (PARTITION BY device_id ORDER BY id) FROM events;
UPDATE events SET prev_id = (SELECT c.prev_id FROM event_chain c WHERE c.id = events.id);
DROP TABLE event_chain;

-- Read while the old index still finds each device's events.
UPDATE devices SET last_event_id = (
    SELECT MAX(e.id) FROM events e WHERE e.device_id = devices.id);

DROP INDEX events_device_at;
