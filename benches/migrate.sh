#!/usr/bin/env bash
# Moving a SQLite database to PostgreSQL (#22): the log of benches/history.sh (N lines, generated if missing) imported
# into a fresh SQLite file, then `hsmwatch db migrate-to postgres` into a fresh database of a PostgreSQL cluster of its
# own (benches/pg_cluster.sh), then `hsmwatch verify` on the copy. Prints the copy's rows/s with its progress lines,
# and each step's time. Everything stops by itself; the work files under target/migrate are deleted at the end.
# Usage: benches/migrate.sh [N]   (e.g. benches/migrate.sh 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
cargo build --release --quiet --bin hsmwatch --example history_lines
bin=$PWD/target/release/hsmwatch
log=target/history/history-$lines.log
mkdir -p target/history
[ -s "$log" ] || target/release/examples/history_lines "$lines" > "$log"

source benches/pg_cluster.sh
work=$PWD/target/migrate
cleanup() { pg_cluster_stop; rm -rf "$work"; }
trap cleanup EXIT
rm -rf "$work" && mkdir -p "$work"
pg_cluster_start "$work" 1GB
export HSMWATCH_DATABASE_URL="postgres://hsmwatch@127.0.0.1:$pg_port/postgres"

seconds_since() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }
start=$(date +%s.%N)
"$bin" import --db "$work/source.db" "$log" > /dev/null
echo "import into SQLite: $(seconds_since "$start") s"
start=$(date +%s.%N)
"$bin" db migrate-to postgres --db "$work/source.db" 2> "$work/progress.log"
took=$(seconds_since "$start")
grep -E '^events: ' "$work/progress.log" | tail -3
echo "migrate-to: $took s, $(awk -v n="$lines" -v t="$took" 'BEGIN { printf "%.0f", n / t }') events/s overall (search index and checks included)"
printf 'storage:\n  backend: postgres\n' > "$work/shared.yaml"
start=$(date +%s.%N)
"$bin" verify --config "$work/shared.yaml"
echo "verify on PostgreSQL: $(seconds_since "$start") s"
start=$(date +%s.%N)
"$bin" verify --db "$work/source.db" > /dev/null
echo "verify on SQLite: $(seconds_since "$start") s"
