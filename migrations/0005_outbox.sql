-- Delivery jobs: one row per (alert, notifier), written in the same transaction as the alert. A row is marked sent
-- only after the receiver accepted it; on restart, pending rows resume.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    alert_id        INTEGER NOT NULL REFERENCES alerts (id),
    notifier        TEXT NOT NULL,
    status          TEXT NOT NULL,          -- pending | sent | dead
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,       -- microseconds since the epoch
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT,
    idempotency_key TEXT NOT NULL UNIQUE
);
CREATE INDEX outbox_due ON outbox (notifier, status, next_attempt_at);
