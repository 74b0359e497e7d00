-- Client addresses and user names come from senders (a scan tries thousands of each), so an index on the value alone
-- takes each new row at a random page: at ten million rows an import or a prune wrote most of that index for every
-- batch. Keyed by day first, new rows land among today's few pages and retention deletes from one end; a query walks
-- the days newest first (src/store/query.rs).
DROP INDEX events_user_ts;
DROP INDEX events_source_ip_ts;
CREATE INDEX events_user_day ON events (ts / 86400000000, user_name, ts) WHERE user_name IS NOT NULL;
CREATE INDEX events_source_ip_day ON events (ts / 86400000000, source_ip, ts) WHERE source_ip IS NOT NULL;
