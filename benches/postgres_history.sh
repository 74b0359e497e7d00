#!/usr/bin/env bash
# The history benchmark on PostgreSQL (#22): a PostgreSQL cluster of its own (initdb under target/pg-history, the
# server on a loopback port, as the postgres user when run as root; stopped by its process id), the log of
# benches/history.sh (N lines, generated if missing) loaded through the store's PostgreSQL events as one collector in
# batches of 1000, then the same on-call queries, warm (median of five). Compare with benches/history.sh N. The
# database takes about 1.1 kB an event on disk (11 GB for 10M, besides the log); it is deleted at the end.
# Usage: benches/postgres_history.sh [N]   (e.g. benches/postgres_history.sh 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
cargo build --release --quiet --example history_lines --example pg_history
log=target/history/history-$lines.log
mkdir -p target/history
[ -s "$log" ] || target/release/examples/history_lines "$lines" > "$log"

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL's server is not installed (tests/peers/install.sh installs it)" >&2; exit 1; }
as_server=()
if [ "$(id -u)" = 0 ]; then as_server=(setpriv --reuid=postgres --regid=postgres --init-groups --); fi
work=$PWD/target/pg-history
server=
cleanup() { [ -n "$server" ] && kill -INT "$server" 2>/dev/null && wait "$server" 2>/dev/null || true; }
trap cleanup EXIT
rm -rf "$work" && mkdir -p "$work"
[ "$(id -u)" = 0 ] && chown postgres: "$work"
"${as_server[@]}" "$bin/initdb" -D "$work/data" -U hsmwatch --auth=trust -E UTF8 --locale=C.UTF-8 > "$work/initdb.log"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Durability as SQLite's WAL with synchronous=NORMAL has it: commits are not flushed one by one.
"${as_server[@]}" "$bin/postgres" -D "$work/data" -p "$port" -k "$work" -c listen_addresses=127.0.0.1 \
  -c shared_buffers=1GB -c synchronous_commit=off -c max_wal_size=1GB > "$work/postgres.log" 2>&1 &
server=$!
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
target/release/examples/pg_history "postgres://hsmwatch@127.0.0.1:$port/postgres" "$log"
size=$(du -sb "$work/data/base" | cut -f1)
cleanup
server=
raw=$(stat -c %s "$log")
rm -rf "$work/data"
echo "database: $size bytes, $(awk -v s="$size" -v n="$lines" -v r="$raw" 'BEGIN { printf "%.0f bytes an event, %.2fx the raw line", s / n, s / r }')"
