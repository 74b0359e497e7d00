-- What the cloud inventory knows of each account's region between reads (its last read: clusters, HSMs, backups;
-- a failure already told; HSMs already reported dark), so that a restart makes no burst of "changes".
CREATE TABLE cloud_state (
    account    TEXT NOT NULL,                    -- the account id ("own" until STS names the collector's own)
    region     TEXT NOT NULL,
    state      TEXT NOT NULL,                    -- JSON
    updated_at INTEGER NOT NULL,                 -- microseconds since the epoch
    PRIMARY KEY (account, region)
);

-- Which appliances and clusters are reported overdue for a backup or a restore.
CREATE TABLE recovery_state (
    subject    TEXT PRIMARY KEY,                 -- `backup host:hsm-01`, `restore cluster:cluster-abc`
    since      INTEGER NOT NULL                  -- when it was reported, microseconds since the epoch
);

-- The last restore exercised on an appliance (a successful `partition.restore`).
ALTER TABLE hosts ADD COLUMN last_restore INTEGER;
