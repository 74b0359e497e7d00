-- Every received line, one row. Typed columns hold what queries filter on; `fields` holds the rest as JSON.
CREATE TABLE events (
    id             INTEGER PRIMARY KEY,
    ts             INTEGER NOT NULL,          -- @timestamp, microseconds since the epoch (UTC)
    ts_digits      INTEGER NOT NULL,          -- fractional digits the header wrote, to print @timestamp back exactly
    created        INTEGER NOT NULL,          -- event.created, microseconds since the epoch
    created_digits INTEGER NOT NULL,
    host           TEXT,                      -- host.name
    dataset        TEXT NOT NULL,             -- event.dataset
    action         TEXT,                      -- event.action
    outcome        TEXT,                      -- event.outcome
    user_name      TEXT,                      -- user.name
    source_ip      TEXT,                      -- source.ip
    format         TEXT NOT NULL,             -- log.syslog.format
    original       TEXT NOT NULL,             -- event.original (invalid UTF-8 escaped as \xNN)
    raw            BLOB,                      -- the frame's bytes, only when they were not valid UTF-8
    fields         TEXT NOT NULL              -- every other field: a JSON object of dotted names to strings
);

-- Queries are newest first, filtered by time and optionally by one of these; each index ends in ts so that the
-- filter and the order are served together. The partial indexes cost nothing for lines without the field.
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_host_ts ON events (host, ts);
CREATE INDEX events_action_ts ON events (action, ts) WHERE action IS NOT NULL;
CREATE INDEX events_user_ts ON events (user_name, ts) WHERE user_name IS NOT NULL;
CREATE INDEX events_source_ip_ts ON events (source_ip, ts) WHERE source_ip IS NOT NULL;
