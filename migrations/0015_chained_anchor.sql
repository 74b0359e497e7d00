-- The chain's anchor becomes part of the chain: retention appends a prune record (kind 1) that states where it moved
-- the anchor (anchor_*), so that moving the anchor by hand and deleting the oldest batches no longer verifies. From
-- scheme 3 on, a record's hash also covers its own columns (kind, event ids, row count, stored_at, the anchor it
-- states), not only its rows and its link.
ALTER TABLE event_batches ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
ALTER TABLE event_batches ADD COLUMN anchor_hash TEXT;
ALTER TABLE event_batches ADD COLUMN anchor_batches INTEGER;
ALTER TABLE event_batches ADD COLUMN anchor_events INTEGER;

-- Events up to legacy_last_event_id were stored before the chain existed (or, in a database pruned before this
-- version, before the anchor as it stands now): the only rows outside every batch that are not tampering. `adopt`:
-- the anchor was moved by an earlier version, which recorded no prune; the server records one for it when it starts.
ALTER TABLE chain_anchor ADD COLUMN legacy_last_event_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chain_anchor ADD COLUMN adopt INTEGER NOT NULL DEFAULT 0;
UPDATE chain_anchor SET legacy_last_event_id = last_event_id,
                        adopt = (pruned_batches > 0 OR hash <> '0000000000000000000000000000000000000000000000000000000000000000');
