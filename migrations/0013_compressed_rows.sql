-- Rows stored once the database has a dictionary hold their line and packed fields compressed together: a BLOB in
-- `original` and an empty `fields` (see src/store/compressed.rs); hsmwatch expands them as it reads. The dictionaries,
-- trained on the database's own lines, are kept here for as long as a row may name them. The view gives ad hoc SQL the
-- message of the rows whose line is stored as text (`storage.compress: false` keeps every line so).
CREATE TABLE text_dictionaries (
    id         INTEGER PRIMARY KEY,
    trained_at INTEGER NOT NULL,     -- microseconds since the epoch
    samples    INTEGER NOT NULL,     -- rows it was trained on
    bytes      BLOB NOT NULL
);
DROP VIEW events_with_message;
CREATE VIEW events_with_message AS
SELECT events.*,
       CASE WHEN typeof(original) = 'blob' THEN NULL
            WHEN message_at IS NOT NULL
                THEN rtrim(CAST(substr(CAST(original AS BLOB), message_at + 1) AS TEXT), char(32, 9, 10, 12, 13))
            WHEN typeof(fields) = 'text' THEN json_extract(fields, '$.message')
       END AS message
FROM events;
