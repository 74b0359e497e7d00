#!/usr/bin/env bash
# What PostgreSQL itself needs to store ROWS events for two collectors, without hsmwatch: the least CPU time the
# two-collector ingest of benches/collectors.sh can take on this machine, whatever the collectors do. ROWS rows shaped
# like the history's (a 131-byte line, packed fields, a SHA-256, the typed columns, 50 hosts) are made in an unlogged
# table inside the server, then stored with hsmwatch's schema (migrations_postgres/, a month partition) by
# server-side statements, each timed on its own: the first collector's insert; the second collector's copy of every
# row (ON CONFLICT DO NOTHING on the dedupe key, then its observer row in event_copies); and the first insert again
# with no secondary index (only the primary and dedupe keys). No client protocol, no hash chain, no search runs, one
# statement at a time: a floor, not an estimate. PostgreSQL runs on a loopback port from a cluster of its own
# (benches/pg_cluster.sh), stopped by its process id.
# Usage: benches/postgres_floor.sh [ROWS]   (e.g. benches/postgres_floor.sh 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-200000}
source benches/pg_cluster.sh
work=$(mktemp -d)
cleanup() { pg_cluster_stop; rm -rf "$work"; }
trap cleanup EXIT
pg_cluster_start "$work" 512MB
psql() { "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U hsmwatch "$@"; }
psql -d postgres -c "CREATE DATABASE floor"
for migration in migrations_postgres/*.sql; do psql -d floor -f "$migration" > /dev/null; done
# ms SQL: the statement's time in milliseconds, as the server reports it.
ms() { psql -d floor -c '\timing on' -c "$1" | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p' | tail -1; }
columns="ts, ts_digits, created, created_digits, host, dataset, action, outcome, user_name, source_ip, format, \
original, raw, fields, message_at, line_hash, occurrence"
psql -d floor <<SQL
CREATE TABLE events_month PARTITION OF events FOR VALUES FROM (0) TO (9223372036854775807);
CREATE TABLE event_copies_month PARTITION OF event_copies FOR VALUES FROM (0) TO (9223372036854775807);
CREATE UNLOGGED TABLE stage AS SELECT g AS n,
  1796000000000000 + g * 1000 AS ts, 3::int2 AS ts_digits, 1796000000000000 + g * 1000 AS created,
  6::int2 AS created_digits, 'hsm-' || lpad((g % 50)::text, 2, '0') AS host, 'luna.audit' AS dataset,
  (ARRAY['lunash.login', 'lunash.command', 'ntls.connect', 'partition.create', NULL])[1 + g % 5] AS action,
  'success' AS outcome, CASE WHEN g % 3 = 0 THEN 'user' || g % 6 END AS user_name,
  CASE WHEN g % 2 = 0 THEN '10.' || g % 4 || '.' || g % 256 || '.' || g % 254 END AS source_ip, 'rfc5424' AS format,
  '<174>1 2026-12-05T20:00:00.123Z hsm-' || lpad((g % 50)::text, 2, '0') || ' lunash 4101 - - info : 0 : Command: '
    || 'partition list : operator : 10.' || g % 4 || '.' || g % 256 || '.' || g % 254 || '/' || (1024 + g % 60000)
    AS original,
  NULL::bytea AS raw, decode(md5(g::text) || md5((g + 1)::text), 'hex') AS fields, 30 AS message_at,
  sha256(g::text::bytea) AS line_hash, 1::int2 AS occurrence
FROM generate_series(1, $rows) g;
VACUUM ANALYZE stage;
SQL
first=$(ms "INSERT INTO events ($columns, observer) SELECT $columns, 'collector-1' FROM stage ORDER BY n")
conflict=$(ms "INSERT INTO events ($columns, observer) SELECT $columns, 'collector-2' FROM stage ORDER BY n \
  ON CONFLICT (host, ts, line_hash, occurrence) DO NOTHING")
copies=$(ms "INSERT INTO event_copies (event_id, ts, collector) SELECT e.id, e.ts, 'collector-2' FROM stage b \
  CROSS JOIN LATERAL (SELECT id, ts, observer FROM events WHERE host = b.host AND ts = b.ts \
  AND line_hash = b.line_hash AND occurrence = b.occurrence LIMIT 1) e WHERE e.observer <> 'collector-2' \
  ON CONFLICT DO NOTHING")
psql -d floor -c "TRUNCATE events, event_copies" \
  -c "DROP INDEX events_ts, events_action_ts, events_user_ts, events_source_ip_ts"
bare=$(ms "INSERT INTO events ($columns, observer) SELECT $columns, 'collector-1' FROM stage ORDER BY n")
rate() { awk -v n="$rows" -v ms="$1" 'BEGIN { printf "%.1f s, %.0f rows/s", ms / 1000, n / (ms / 1000) }'; }
echo "first collector's insert, every index:           $(rate "$first")"
echo "second collector's copy (conflict, then observer): $(rate "$(awk -v a="$conflict" -v b="$copies" 'BEGIN { print a + b }')") ($(rate "$conflict") + $(rate "$copies"))"
echo "both, one after the other:                        $(rate "$(awk -v a="$first" -v b="$conflict" -v c="$copies" 'BEGIN { print a + b + c }')")"
echo "first collector's insert, no secondary index:     $(rate "$bare")"
