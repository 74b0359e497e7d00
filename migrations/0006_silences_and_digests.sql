-- Silences: alerts matching every matcher while a silence is active are recorded but not delivered.
CREATE TABLE silences (
    id         INTEGER PRIMARY KEY,
    matchers   TEXT NOT NULL,             -- JSON object {"rule": "luna.auth.*", "host": "hsm-01", ...}
    starts_at  INTEGER NOT NULL,          -- microseconds since the epoch
    ends_at    INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    expired_at INTEGER                    -- set by `silence expire`
);
CREATE INDEX silences_ends_at ON silences (ends_at);

-- The silence that held an alert back (no delivery jobs were queued for it).
ALTER TABLE alerts ADD COLUMN silenced_by INTEGER REFERENCES silences (id);

-- A job sent inside a digest by the flood guard: how many alerts that digest carried.
ALTER TABLE outbox ADD COLUMN digest_size INTEGER;
