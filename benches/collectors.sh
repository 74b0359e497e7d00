#!/usr/bin/env bash
# TCP ingest with two collectors on one PostgreSQL database (#22) against one collector on its own SQLite file, in the
# same run, interleaved so that the machine's drift falls on all alike. Each run:
#   sqlite   one `hsmwatch serve` on a fresh SQLite file, MESSAGES lines over TCP (examples/loopback_sender);
#   pg-two   two collectors on a fresh PostgreSQL database, the same MESSAGES lines sent to each (an HSM with both as
#            remote hosts): each line is stored once, the second copy adds its collector to the row's observers;
#   pg-one   one collector on a fresh PostgreSQL database, for reference.
# A rate is distinct lines stored per second, from the first line sent until every server has stored (or counted
# as a copy) all it received. PostgreSQL runs on a loopback port from a cluster of its own (initdb in a temporary
# directory, as the postgres user when run as root), with synchronous_commit=off: durability as SQLite's WAL with
# synchronous=NORMAL has it. Every server is stopped by its process id; everything stops by itself.
# Usage: benches/collectors.sh [MESSAGES] [RUNS]   (e.g. benches/collectors.sh 200000 3)
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-200000} runs=${2:-3}
cargo build --release --quiet --bin hsmwatch --example loopback_sender
hsmwatch=$PWD/target/release/hsmwatch sender=$PWD/target/release/examples/loopback_sender
source benches/pg_cluster.sh
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  pg_cluster_stop
  rm -rf "$work"
}
trap cleanup EXIT
pg_cluster_start "$work" 512MB
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
printf 'storage:\n  retention: null\n' > "$work/sqlite.yaml"

# wait_listening PORT: until a TCP connection to it succeeds (20 s at most).
wait_listening() {
  for _ in $(seq 400); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done
  echo "nothing listens on $1" >&2; exit 1
}
# stop_all: every server of this run, by process id, waiting for each to exit.
stop_all() {
  for pid in "${pids[@]}"; do kill -TERM "$pid"; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "server $pid did not exit within 60 s" >&2; exit 1; }
  done
  pids=()
}
rate_of() { sed -E 's/.*stored_msgs_per_s=([0-9]+).*/\1/'; }

# sqlite: msg/s into a fresh SQLite file.
sqlite() {
  local tcp http rate
  tcp=$(port); http=$(port)
  rm -f "$work"/empty.db*
  "$hsmwatch" serve --config "$work/sqlite.yaml" --db "$work/empty.db" --tcp "127.0.0.1:$tcp" \
    --http "127.0.0.1:$http" 2>> "$work/serve.log" &
  pids+=($!)
  wait_listening "$tcp"
  rate=$("$sender" --addr "127.0.0.1:$tcp" --db "$work/empty.db" --messages "$messages" | rate_of)
  stop_all
  echo "$rate"
}

# postgres DATABASE COLLECTORS: msg/s of distinct lines, the same lines sent to each collector.
postgres() {
  local database=$1 count=$2 tcp http args=() rate
  "$pg_bin/psql" -q -h 127.0.0.1 -p "$pg_port" -U hsmwatch -d postgres -c "CREATE DATABASE $database" > /dev/null
  for n in $(seq "$count"); do
    tcp=$(port); http=$(port)
    printf 'storage:\n  backend: postgres\n  postgres:\n    collector: collector-%s\nlisten:\n  tcp:\n    - address: 127.0.0.1:%s\n' \
      "$n" "$tcp" > "$work/collector-$n.yaml"
    HSMWATCH_DATABASE_URL="postgres://hsmwatch@127.0.0.1:$pg_port/$database" \
      "$hsmwatch" serve --config "$work/collector-$n.yaml" --http "127.0.0.1:$http" 2>> "$work/serve.log" &
    pids+=($!)
    wait_listening "$tcp"
    if [ "$n" = 1 ]; then args+=(--addr "127.0.0.1:$tcp"); else args+=(--also "127.0.0.1:$tcp"); fi
    args+=(--metrics "127.0.0.1:$http")
  done
  rate=$("$sender" "${args[@]}" --messages "$messages" | rate_of)
  stop_all
  echo "$rate"
}

for run in $(seq "$runs"); do
  into_sqlite=$(sqlite)
  into_pg_two=$(postgres "two_$run" 2)
  into_pg_one=$(postgres "one_$run" 1)
  echo "run $run: sqlite $into_sqlite msg/s; postgres, two collectors $into_pg_two msg/s" \
    "($(awk -v a="$into_pg_two" -v b="$into_sqlite" 'BEGIN { printf "%.2f", a / b }')x);" \
    "postgres, one collector $into_pg_one msg/s ($(awk -v a="$into_pg_one" -v b="$into_sqlite" 'BEGIN { printf "%.2f", a / b }')x)"
done
