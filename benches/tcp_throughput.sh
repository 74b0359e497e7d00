#!/usr/bin/env bash
# End-to-end TCP → SQLite throughput on loopback: starts `hsmwatch serve` on a fresh database, sends numbered lines
# with examples/loopback_sender.rs, and times until the last one is committed. Repeats RUNS times, prints the median.
# RULES=off runs with the shipped decoders and every rule disabled (the default is decoders and the shipped rules on).
# Usage: [RULES=on|off] benches/tcp_throughput.sh [MESSAGES] [CONNECTIONS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/ingest_setup.sh
messages=${1:-500000}
connections=${2:-4}
runs=${3:-5}
cargo build --release --quiet --bin hsmwatch --example loopback_sender
bin=target/release/hsmwatch
sender=target/release/examples/loopback_sender
rates=()
for run in $(seq 1 "$runs"); do
  dir=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rules=$(rules_dir "${RULES:-on}" "$dir")
  "$bin" serve --tcp "127.0.0.1:$port" --http 127.0.0.1:0 --db "$dir/bench.db" --rules "$rules" 2>"$dir/serve.log" &
  server=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  result=$("$sender" --addr "127.0.0.1:$port" --db "$dir/bench.db" --messages "$messages" --connections "$connections")
  echo "run $run: $result"
  rates+=("$(sed -E 's/.*stored_msgs_per_s=([0-9]+).*/\1/' <<<"$result")")
  kill -TERM "$server"; wait "$server" || true
  rm -rf "$dir"
done
median=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
echo "median stored msg/s over $runs runs ($messages messages, $connections connections, rules ${RULES:-on}): $median"
