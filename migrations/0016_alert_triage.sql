-- An alert is worked as one thing: the first firing of a fingerprint opens it (that row's id is the alert's id), and
-- later firings, resolutions and notices of the same fingerprint join it until it is resolved. The opening row holds
-- the alert's state; every change of it is recorded in alert_changes.
ALTER TABLE alerts ADD COLUMN alert_id INTEGER;       -- the opening row of the alert this row belongs to
ALTER TABLE alerts ADD COLUMN state TEXT;             -- opening rows only: firing | acknowledged | resolved
ALTER TABLE alerts ADD COLUMN state_at INTEGER;       -- when the state last changed (microseconds)
ALTER TABLE alerts ADD COLUMN state_by TEXT;          -- who changed it: a person, `rule`, or `hsmwatch (...)`
ALTER TABLE alerts ADD COLUMN firings INTEGER;        -- opening rows: firings joined so far (itself included)
ALTER TABLE alerts ADD COLUMN last_id INTEGER;        -- opening rows: the latest firing joined
ALTER TABLE alerts ADD COLUMN last_fired_at INTEGER;  -- opening rows: when that one fired

CREATE TABLE alert_changes (
    id       INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts (id),
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    change   TEXT NOT NULL,                           -- acknowledged | unacknowledged | resolved
    note     TEXT
);
CREATE INDEX alert_changes_alert ON alert_changes (alert_id, id);
CREATE INDEX alerts_open ON alerts (fingerprint) WHERE state IN ('firing', 'acknowledged');
CREATE INDEX alerts_of_alert ON alerts (alert_id, id);

-- Rows from before: each is an alert of its own. The latest firing of each fingerprint stays open (resolve_after
-- closes it at the first pass if it is old); every other was superseded and counts as resolved at the upgrade.
UPDATE alerts SET alert_id = id, firings = 1, last_id = id, last_fired_at = fired_at,
    state = 'resolved', state_at = fired_at, state_by = 'hsmwatch (upgrade)';
UPDATE alerts SET state = 'firing', state_by = NULL
    WHERE status = 'firing' AND id IN (SELECT max(id) FROM alerts GROUP BY fingerprint);
