-- A message that is the tail of the original line (nearly all of them; ASCII whitespace after it, such as a frame's
-- LF, aside) is no longer repeated in `fields`: the row records the byte offset in `original` where it starts, and
-- readers rebuild it (from there to the end, trailing ASCII whitespace removed). About a third fewer bytes per row to
-- write, hash, checkpoint and keep. NULL: the message (if any) is in `fields`, as in rows stored before.
ALTER TABLE events ADD COLUMN message_at INTEGER;

-- How a batch's hash covers its rows: 1 = the columns up to `fields` (batches stored before), 2 = also `message_at`.
ALTER TABLE event_batches ADD COLUMN scheme INTEGER NOT NULL DEFAULT 1;

-- Events with their message, for those who query the database with sqlite3 (byte offsets: substr on the BLOB).
CREATE VIEW events_with_message AS
SELECT events.*,
       CASE WHEN message_at IS NULL THEN json_extract(fields, '$.message')
            ELSE rtrim(CAST(substr(CAST(original AS BLOB), message_at + 1) AS TEXT), char(32, 9, 10, 12, 13))
       END AS message
FROM events;
