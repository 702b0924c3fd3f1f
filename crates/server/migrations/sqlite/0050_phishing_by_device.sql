-- Agents ask for the triage of the reports they sent (issues 6 and 7): find a device's
-- reports without scanning the whole inbox.
CREATE INDEX phishing_reports_device ON phishing_reports (device_id, received_at);
