-- What is known of each SNMP target between polls (the last reading, a failure already told, storage already high,
-- the certificate already warned about), so that a restart makes no burst of "changes".
CREATE TABLE snmp_state (
    target     TEXT PRIMARY KEY,                 -- the target's name (its host.name)
    state      TEXT NOT NULL,                    -- JSON
    updated_at INTEGER NOT NULL                  -- microseconds since the epoch
);
