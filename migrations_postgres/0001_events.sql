-- Events in PostgreSQL, shared by several collectors: the columns of SQLite's `events` (see migrations/), with the
-- line always in clear (`original`) and the other fields packed as in SQLite (src/store/packed.rs). Partitioned by
-- month of `ts`, so that retention drops whole partitions (src/store/postgres/ makes them as events arrive). Rows
-- moved from SQLite (hsmwatch db migrate-to) keep their columns as they were, and the oldest may lack a line, a dataset
-- or a format: the chain hashes them as stored.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY,
    ts             BIGINT NOT NULL,          -- @timestamp, microseconds since the epoch (UTC)
    ts_digits      SMALLINT NOT NULL,        -- fractional digits the header wrote
    created        BIGINT NOT NULL,          -- event.created, microseconds since the epoch
    created_digits SMALLINT NOT NULL,
    host           TEXT NOT NULL,            -- host.name, '' when the line names none (the dedupe key needs a value)
    dataset        TEXT,
    action         TEXT,
    outcome        TEXT,
    user_name      TEXT,
    source_ip      TEXT,
    format         TEXT,
    original       TEXT,                     -- event.original
    raw            BYTEA,                    -- the frame's bytes, only when they were not valid UTF-8
    fields         BYTEA NOT NULL,           -- every other field, packed
    message_at     INTEGER,
    line_hash      BYTEA NOT NULL,           -- SHA-256 of the line (and raw frame)
    occurrence     SMALLINT NOT NULL,        -- 1 for the first such line a collector received, 2 for an identical one...
    observer       TEXT NOT NULL,            -- the collector (observer.name) that stored it; others in event_copies
    PRIMARY KEY (id, ts)
) PARTITION BY RANGE (ts);

-- The same line from the same host at the same time, received by two collectors (an appliance sending to both), is
-- one event: the second copy only adds its collector to `event_copies`. Two identical lines in the same second from one
-- appliance (two failed logins) are two events: each collector numbers them, and the numbers match across collectors.
-- It serves a host's events by time as well (its prefix): a second index on (host, ts) would cost every insert and
-- tempt the planner to look copies up by it, walking every line of a host in the same second.
CREATE UNIQUE INDEX events_copy ON events (host, ts, line_hash, occurrence);
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_action_ts ON events (action, ts) WHERE action IS NOT NULL;
CREATE INDEX events_user_ts ON events (user_name, ts) WHERE user_name IS NOT NULL;
CREATE INDEX events_source_ip_ts ON events (source_ip, ts) WHERE source_ip IS NOT NULL;
-- Substring search of the line (query --contains): trigrams, case-insensitive through ILIKE.
CREATE INDEX events_original_trgm ON events USING gin (original gin_trgm_ops);

-- The other collectors that received an event (its observers are `events.observer` and these). A row of its own, not
-- an update of the event's: an update would write the wide row again and every index of it, the trigram index
-- included (measured: the second collector's copies cost as much as the first's inserts). Partitioned by the event's
-- month like the events, so that retention drops both together.
CREATE TABLE event_copies (
    event_id  BIGINT NOT NULL,
    ts        BIGINT NOT NULL,
    collector TEXT NOT NULL,
    PRIMARY KEY (event_id, collector, ts)
) PARTITION BY RANGE (ts);
