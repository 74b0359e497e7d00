-- Events per hour, host and category (and failed logins), kept current after each batch: the dashboard's charts and
-- 24-hour counts read these few rows instead of scanning events.
CREATE TABLE event_hours (
    hour          INTEGER NOT NULL,       -- @timestamp in whole hours since the epoch
    host          TEXT NOT NULL,          -- host.name, '-' when absent
    category      TEXT NOT NULL,          -- event.category, 'uncategorized' when absent
    events        INTEGER NOT NULL,
    failed_logins INTEGER NOT NULL,       -- category authentication, outcome failure
    PRIMARY KEY (hour, host, category)
) WITHOUT ROWID;

INSERT INTO event_hours (hour, host, category, events, failed_logins)
SELECT ts / 3600000000,
       coalesce(host, '-'),
       coalesce(json_extract(fields, '$."event.category"'), 'uncategorized'),
       count(*),
       sum(CASE WHEN json_extract(fields, '$."event.category"') = 'authentication' AND outcome = 'failure' THEN 1 ELSE 0 END)
FROM events GROUP BY 1, 2, 3;
