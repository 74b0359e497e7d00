#!/usr/bin/env bash
# TCP ingest into a big database against an empty one, for one or more hsmwatch binaries, interleaved so that the
# machine's drift falls on all of them alike: each run starts a server on BIG_DB, sends MESSAGES lines with
# examples/loopback_sender, stops it, then the same into a fresh empty database. Prints each pair's rates and ratio.
# BIG_DB is typically the 10M-event database benches/history.sh leaves under target/history/. Loopback only; every
# server is stopped by its process id. Its rule cursor is moved to the newest event first (an import does not evaluate
# rules, and a server catching up on that backlog is not what this measures).
# LINES=mix (the default): the history's traffic mix, a day after the big database's newest event (`live_mix` in
#   benches/ingest_setup.sh), a new file each run.
# LINES=numbered: the sender's own numbered lines, stamped with the time of the run: one host in 16, one user, one
#   address, one action, so that every index is appended to at its end in an empty database, which a year of other
#   keys around them does not allow in the big one.
# RULES=off (the default): the shipped decoders, every rule disabled. The mix fires an alert for about one line in ten
#   (fan alarms, partition and time changes): with RULES=on the alert path is measured more than the store.
# Usage: [LINES=mix|numbered] [RULES=off|on] benches/ingest_pair.sh BIG_DB MESSAGES RUNS BINARY...
#   e.g. benches/ingest_pair.sh target/history/history-10000000.db 200000 3 /tmp/hsmwatch-before target/release/hsmwatch
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/ingest_setup.sh
big=$1 messages=$2 runs=$3
shift 3
[ $# -gt 0 ] || { echo "usage: $0 BIG_DB MESSAGES RUNS BINARY..." >&2; exit 2; }
cargo build --release --quiet --example loopback_sender --example history_lines
sender=$PWD/target/release/examples/loopback_sender
dir=$(mktemp -d)
# live_lines: the sender's options for this run's lines.
live_lines() {
  [ "${LINES:-mix}" = numbered ] && return
  live_mix "$big" "$messages" "$dir/live.log"
  echo --file "$dir/live.log"
}
server=
cleanup() { [ -n "$server" ] && kill -TERM "$server" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
printf 'storage:\n  retention: null\n' > "$dir/plain.yaml"
rules=$(rules_dir "${RULES:-off}" "$dir")
sqlite3 "$big" "UPDATE rule_cursor SET last_event_id = (SELECT max(id) FROM events)"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# rate BIN DB: msg/s stored by a server of BIN on DB.
rate() {
  local tcp http rate
  tcp=$(port); http=$(port)
  "$1" serve --config "$dir/plain.yaml" --db "$2" --tcp "127.0.0.1:$tcp" --http "127.0.0.1:$http" --rules "$rules" 2>> "$dir/serve.log" &
  server=$!
  for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$tcp") 2>/dev/null && break; sleep 0.05; done
  rate=$("$sender" --addr "127.0.0.1:$tcp" --db "$2" --messages "$messages" "${lines[@]}" | sed -E 's/.*stored_msgs_per_s=([0-9]+).*/\1/')
  kill -TERM "$server"
  for _ in $(seq 600); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$server" 2>/dev/null && { echo "server $server did not exit within 60 s" >&2; exit 1; }
  server=
  echo "$rate"
}
for run in $(seq "$runs"); do
  for bin in "$@"; do
    read -r -a lines < <(live_lines) || true
    into_big=$(rate "$bin" "$big")
    rm -f "$dir"/empty.db*
    into_empty=$(rate "$bin" "$dir/empty.db")
    echo "run $run $bin: into the big database $into_big msg/s, into an empty one $into_empty msg/s:" \
      "$(awk -v a="$into_big" -v b="$into_empty" 'BEGIN { printf "%.2f", a / b }')x"
  done
done
