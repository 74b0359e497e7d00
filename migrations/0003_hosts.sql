-- The HSM inventory: one row per host.name, kept current from committed batches.
CREATE TABLE hosts (
    name               TEXT PRIMARY KEY,
    first_seen         INTEGER NOT NULL,      -- time of receipt, microseconds since the epoch
    last_seen          INTEGER NOT NULL,
    events             INTEGER NOT NULL,
    addresses          TEXT NOT NULL,         -- JSON array of sender addresses (ip, without port)
    datasets           TEXT NOT NULL,         -- JSON object: event.dataset -> count
    serials            TEXT NOT NULL,         -- JSON array of HSM serial numbers seen
    software           TEXT NOT NULL,         -- JSON array of appliance software packages installed
    last_heartbeat     INTEGER,
    last_backup        INTEGER,               -- last successful partition backup
    last_login_failure INTEGER
);
