#!/usr/bin/env bash
# A year of history: N generated RFC 5424 lines (50 HSMs, 365 days, the Luna traffic mix of
# examples/history_lines.rs) imported into a fresh database, then measured:
#   - import lines/s;
#   - bytes per event: the file, and per table and index (SQLite's dbstat), against the raw line;
#   - each query of an on-call engineer, warm (median of 5) and cold (page cache dropped, as root; a fresh process);
#   - `contains` search through the API and the dashboard of a running server;
#   - TCP ingest into the big database against an empty one, in the same run: an hour of the traffic mix a day after
#     the history (rules disabled), then the sender's numbered lines (shipped rules) as earlier runs measured it;
#   - TCP ingest of the mix while retention prunes a month, against the same without pruning;
#   - import into the big database against an empty one.
# Usage: benches/history.sh [N] [INGEST_MESSAGES]   (e.g. benches/history.sh 10000000)
# Work files stay under target/history/ (the generated log is kept for the next run of the same N).
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/ingest_setup.sh
lines=${1:-1000000}
ingest=${2:-200000}
work=target/history
mkdir -p "$work"
cargo build --release --quiet --bin hsmwatch --example history_lines --example loopback_sender
bin=$PWD/target/release/hsmwatch
sender=$PWD/target/release/examples/loopback_sender
log=$work/history-$lines.log
[ -s "$log" ] || target/release/examples/history_lines "$lines" > "$log"
raw=$(stat -c %s "$log")
echo "generated: $lines lines, $raw bytes, $(awk -v b="$raw" -v n="$lines" 'BEGIN { printf "%.1f", b / n }') bytes a line"

db=$work/history-$lines.db
rm -f "$db" "$db-wal" "$db-shm"
start=$(date +%s.%N)
"$bin" import --db "$db" "$log" > "$work/import.out"
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')
echo "import: $(awk -v n="$lines" -v t="$elapsed" 'BEGIN { printf "%.0f lines/s (%.1f s)", n / t, t }')"

size=$(stat -c %s "$db")
echo "database: $size bytes, $(awk -v s="$size" -v n="$lines" -v r="$raw" 'BEGIN { printf "%.0f bytes an event, %.2fx the raw line", s / n, s / r }')"
sqlite3 "$db" "SELECT name, sum(pgsize) AS bytes, printf('%.1f', sum(pgsize) * 1.0 / $lines) AS per_event FROM dbstat GROUP BY name ORDER BY bytes DESC" |
  awk -F'|' '{ printf "  %-32s %14.0f bytes  %8s per event\n", $1, $2, $3 }'

# A query's time in milliseconds: a fresh process each time, as an operator runs it.
time_ms() {
  local start end
  start=$(date +%s%N)
  "$@" > /dev/null
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; }

queries=(
  "--host hsm-07 --outcome failure --since 24h"
  "--action partition.create"
  "--user secops"
  "--source-ip 10.1.2.3"
  "--contains p12x200"
  "--word p12x200"
)
can_drop=yes
drop_caches || can_drop=no
for q in "${queries[@]}"; do
  # shellcheck disable=SC2086
  cold=$( [ "$can_drop" = yes ] && drop_caches && time_ms "$bin" query --db "$db" $q || echo "-")
  # shellcheck disable=SC2086
  warm=$(for _ in 1 2 3 4 5; do time_ms "$bin" query --db "$db" $q; done | median)
  printf "query %-46s warm %6s ms  cold %6s ms\n" "$q" "$warm" "$cold"
done
[ "$can_drop" = yes ] || echo "(cold: the page cache cannot be dropped here; run as root on a machine that allows it)"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# serve DB CONFIG [RULES_DIR]: starts a server on DB, prints "PID TCP_PORT HTTP_PORT".
serve() {
  local tcp http
  tcp=$(port); http=$(port)
  "$bin" serve --config "$2" --db "$1" --tcp "127.0.0.1:$tcp" --http "127.0.0.1:$http" --rules "${3:-rules}" \
    2>> "$work/serve.log" &
  local pid=$!
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$tcp") 2>/dev/null && break; sleep 0.05; done
  echo "$pid $tcp $http"
}
# stop PID: SIGTERM, then waits for the server to exit (it is not this shell's child: `wait` cannot), at most 60 s.
stop() {
  kill -TERM "$1"
  for _ in $(seq 600); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  echo "server $1 did not exit within 60 s of SIGTERM" >&2
  exit 1
}
plain=$work/plain.yaml
printf 'storage:\n  retention: null\n' > "$plain"

# The rules' backlog (every imported event, evaluated once by a server) is not what this measures, and a year of the
# generator's traffic mix fires about a million alerts: mark it evaluated, as if a server had run through it.
sqlite3 "$db" "UPDATE rule_cursor SET last_event_id = (SELECT max(id) FROM events)"
read -r pid tcp http < <(serve "$db" "$plain")
for path in "/api/events?contains=p12x200" "/events?contains=p12x200"; do
  cold=-
  if [ "$can_drop" = yes ]; then
    # Cold: a server started after the page cache was dropped, its first request.
    stop "$pid"
    drop_caches
    read -r pid tcp http < <(serve "$db" "$plain")
    cold=$(time_ms curl -sf "http://127.0.0.1:$http$path")
  fi
  warm=$(for _ in 1 2 3 4 5; do time_ms curl -sf "http://127.0.0.1:$http$path"; done | median)
  printf "http  %-46s warm %6s ms  cold %6s ms\n" "$path" "$warm" "$cold"
done
stop "$pid"

# TCP ingest, the big database against an empty one. The lines: an hour of the generator's traffic mix a day after the
# history's newest event (live_mix in benches/ingest_setup.sh), the same file into both, with every rule disabled (the
# mix fires an alert for about one line in ten: with the rules on, the alert path is measured more than the store).
# Then, for comparison with earlier runs, the sender's own numbered lines with the shipped rules (one host in 16, one
# user, one address, one action: every index appended to at its end in the empty database).
norules=$(no_rules_dir "$work")
# ingest DB RULES_DIR [SENDER_OPTION...]: msg/s of $ingest lines sent to a server on DB.
ingest() {
  local db=$1 rules=$2 rate
  shift 2
  read -r pid tcp http < <(serve "$db" "$plain" "$rules")
  rate=$("$sender" --addr "127.0.0.1:$tcp" --db "$db" --messages "$ingest" "$@" | sed -E 's/.*stored_msgs_per_s=([0-9]+).*/\1/')
  stop "$pid"
  echo "$rate"
}
empty=$work/empty.db
live_mix "$db" "$ingest" "$work/live.log"
big=$(ingest "$db" "$norules" --file "$work/live.log")
rm -f "$empty" "$empty-wal" "$empty-shm"
small=$(ingest "$empty" "$norules" --file "$work/live.log")
echo "tcp ingest of the traffic mix: into the $lines-event database $big msg/s, into an empty one $small msg/s: $(awk -v a="$big" -v b="$small" 'BEGIN { printf "%.2f", a / b }')x"
big=$(ingest "$db" rules)
rm -f "$empty" "$empty-wal" "$empty-shm"
small=$(ingest "$empty" rules)
echo "tcp ingest of numbered lines: into the $lines-event database $big msg/s, into an empty one $small msg/s: $(awk -v a="$big" -v b="$small" 'BEGIN { printf "%.2f", a / b }')x"

# Retention: the batches holding the oldest month are made 13 months old (an import stores every batch now), then a
# server with a year's retention prunes them while lines arrive.
month=$(sqlite3 "$db" "SELECT max(id) FROM events WHERE ts < (SELECT min(ts) FROM events) + 30 * 86400 * 1000000")
sqlite3 "$db" "UPDATE event_batches SET stored_at = stored_at - 395 * 86400 * 1000000 WHERE last_event_id <= $month"
pruning=$work/pruning.yaml
printf 'storage:\n  retention: 365d\n  prune_interval: 1s\n' > "$pruning"
live_mix "$db" "$ingest" "$work/live.log"
read -r pid tcp http < <(serve "$db" "$pruning" "$norules")
sleep 1.5
during=$("$sender" --addr "127.0.0.1:$tcp" --db "$db" --messages "$ingest" --file "$work/live.log" | sed -E 's/.*stored_msgs_per_s=([0-9]+).*/\1/')
stop "$pid"
left=$(sqlite3 "$db" "SELECT count(*) FROM events WHERE id <= $month")
live_mix "$db" "$ingest" "$work/live.log"
without=$(ingest "$db" "$norules" --file "$work/live.log")
echo "tcp ingest while retention prunes a month ($month events, $left left when the run ended): $during msg/s, without pruning $without msg/s: $(awk -v a="$during" -v b="$without" 'BEGIN { printf "%.2f", a / b }')x"

# Import into the big database against an empty one: a tenth of the lines (at most 1M), the same file both times.
extra=$((lines / 10 > 1000000 ? 1000000 : lines / 10))
head -n "$extra" "$log" > "$work/extra.log"
rate() {
  local start elapsed
  start=$(date +%s.%N)
  "$bin" import --db "$1" "$work/extra.log" > /dev/null
  elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')
  awk -v n="$extra" -v t="$elapsed" 'BEGIN { printf "%.0f", n / t }'
}
rm -f "$empty" "$empty-wal" "$empty-shm"
into_empty=$(rate "$empty")
into_big=$(rate "$db")
echo "import of $extra lines: into the big database $into_big lines/s, into an empty one $into_empty lines/s: $(awk -v a="$into_big" -v b="$into_empty" 'BEGIN { printf "%.2f", a / b }')x"
rm -f "$work/extra.log"
