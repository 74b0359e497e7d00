-- New rows store `fields` packed (a BLOB: one byte a field name, values found in the line stored as their position in
-- it, facility and severity names left to their codes; see src/store/packed.rs), a fifth of the JSON object rows stored
-- before keep (TEXT). hsmwatch reads both. The view gives ad hoc SQL the message of every row whose message ends its
-- line, and of older rows whatever their message.
DROP VIEW events_with_message;
CREATE VIEW events_with_message AS
SELECT events.*,
       CASE WHEN message_at IS NOT NULL
                THEN rtrim(CAST(substr(CAST(original AS BLOB), message_at + 1) AS TEXT), char(32, 9, 10, 12, 13))
            WHEN typeof(fields) = 'text' THEN json_extract(fields, '$.message')
       END AS message
FROM events;
