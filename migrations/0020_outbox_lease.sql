-- Until when a delivery worker holds a job it is sending (PostgreSQL, where several collectors' workers share the
-- outbox and each takes jobs with FOR UPDATE SKIP LOCKED); SQLite's one worker per notifier leaves it empty. Kept
-- alike in both so that one SQL text serves both (src/store/tables.rs).
ALTER TABLE outbox ADD COLUMN lease_until INTEGER;
