-- Alerts: every firing and resolution, whether or not a notification went out.
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY,
    rule_id     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    severity    TEXT NOT NULL,
    status      TEXT NOT NULL,            -- firing | resolved
    group_json  TEXT NOT NULL,            -- {"host.name": "hsm-01", ...}
    count       INTEGER NOT NULL,
    first_seen  INTEGER,                  -- microseconds since the epoch
    last_seen   INTEGER,
    fired_at    INTEGER NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    event_ids   TEXT NOT NULL,            -- JSON array of events.id
    notify      INTEGER NOT NULL,         -- 0 when held back by the throttle
    suppressed  INTEGER NOT NULL
);
CREATE INDEX alerts_fired_at ON alerts (fired_at);
CREATE INDEX alerts_fingerprint ON alerts (fingerprint, fired_at);

-- Rule state, one row per rule and group, saved with the alerts it led to.
CREATE TABLE rule_state (
    rule_id   TEXT NOT NULL,
    rule_hash TEXT NOT NULL,              -- the rule's source hash: state of a changed rule is not restored
    group_key TEXT NOT NULL,
    state     TEXT NOT NULL,              -- JSON
    PRIMARY KEY (rule_id, group_key)
);

-- Throttle marks per fingerprint.
CREATE TABLE throttle_marks (
    fingerprint TEXT PRIMARY KEY,
    last_sent   INTEGER NOT NULL,
    suppressed  INTEGER NOT NULL
);

-- The last event the rules have evaluated: after a crash, evaluation resumes after it.
CREATE TABLE rule_cursor (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    last_event_id INTEGER NOT NULL
);
-- Events stored before rules existed are not evaluated retroactively.
INSERT INTO rule_cursor (id, last_event_id) SELECT 1, coalesce(max(id), 0) FROM events;
