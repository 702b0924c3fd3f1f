-- "What IT can see": the last report the server acknowledged, verbatim, and when.
--
-- A report leaves the outbox only after the server acknowledged it, so the row's deletion is
-- the moment it reached IT; the trigger keeps its body under one key in `kv`, in the same
-- transaction as the delete, as JSON of `tandem_proto::activity::SentReport`.
CREATE TRIGGER outbox_acknowledged AFTER DELETE ON outbox
BEGIN
    INSERT INTO kv (key, value)
    VALUES (
        'last_sent_report',
        json_object(
            'acknowledged_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
            'body', OLD.body
        )
    )
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
END;
