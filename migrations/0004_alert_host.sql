-- The host an alert concerns (its group's host.name, else its last event's), for the inventory and the dashboard.
ALTER TABLE alerts ADD COLUMN host TEXT;
CREATE INDEX alerts_host ON alerts (host, fired_at);
