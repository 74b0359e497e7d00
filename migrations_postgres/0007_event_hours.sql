-- Events and failed logins per hour, host and category, for the dashboard's charts and 24-hour counts: SQLite's
-- event_hours (migrations/0008_event_hours.sql), counted by the collector that stores an event, in the batch's
-- transaction (a copy of an event another collector stored is not counted again).
CREATE TABLE event_hours (
    hour          BIGINT NOT NULL,          -- hours since the epoch, of the event's @timestamp
    host          TEXT NOT NULL,
    category      TEXT NOT NULL,
    events        BIGINT NOT NULL,
    failed_logins BIGINT NOT NULL,
    PRIMARY KEY (hour, host, category)
);
