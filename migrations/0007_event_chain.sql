-- The tamper-evident chain: one row per committed batch of events, its hash = SHA-256 over the previous batch's hash
-- and every row of the batch (see src/store/chain.rs), written in the batch's own transaction.
CREATE TABLE event_batches (
    id             INTEGER PRIMARY KEY,
    first_event_id INTEGER NOT NULL,
    last_event_id  INTEGER NOT NULL,
    row_count      INTEGER NOT NULL,
    stored_at      INTEGER NOT NULL,          -- microseconds since the epoch
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX event_batches_stored_at ON event_batches (stored_at);

-- Where the chain starts: events up to last_event_id are outside it (stored before it existed, or pruned by
-- retention), and the first batch links to `hash`. Retention moves it forward with each batch it prunes.
CREATE TABLE chain_anchor (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    last_event_id  INTEGER NOT NULL,
    hash           TEXT NOT NULL,
    pruned_batches INTEGER NOT NULL DEFAULT 0,
    pruned_events  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO chain_anchor (id, last_event_id, hash)
SELECT 1, coalesce(max(id), 0), '0000000000000000000000000000000000000000000000000000000000000000' FROM events;
