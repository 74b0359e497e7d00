#!/usr/bin/env bash
# The history benchmark on PostgreSQL (#22): a PostgreSQL cluster of its own (initdb under target/pg-history, the
# server on a loopback port, as the postgres user when run as root; stopped by its process id), the log of
# benches/history.sh (N lines, generated if missing) loaded through the store's PostgreSQL events as one collector in
# batches of 1000, then the same on-call queries, warm (median of five). Compare with benches/history.sh N. The
# database takes about 0.8 kB an event on disk (8 GB for 10M, besides the log); it is deleted at the end.
# Usage: benches/postgres_history.sh [N]   (e.g. benches/postgres_history.sh 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
cargo build --release --quiet --example history_lines --example pg_history
log=target/history/history-$lines.log
mkdir -p target/history
[ -s "$log" ] || target/release/examples/history_lines "$lines" > "$log"

source benches/pg_cluster.sh
work=$PWD/target/pg-history
trap pg_cluster_stop EXIT
rm -rf "$work" && mkdir -p "$work"
pg_cluster_start "$work" 1GB
target/release/examples/pg_history "postgres://hsmwatch@127.0.0.1:$pg_port/postgres" "$log"
size=$(du -sb "$work/data/base" | cut -f1)
pg_cluster_stop
raw=$(stat -c %s "$log")
rm -rf "$work/data"
echo "database: $size bytes, $(awk -v s="$size" -v n="$lines" -v r="$raw" 'BEGIN { printf "%.0f bytes an event, %.2fx the raw line", s / n, s / r }')"
