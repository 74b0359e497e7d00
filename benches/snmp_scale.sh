#!/usr/bin/env bash
# SNMP polling at scale: net-snmp agents (a fake Luna, served by tests/peers/luna_snmp.py) answer on TARGETS
# loopback addresses from 127.0.1.1 on, 100 per agent; `hsmwatch serve` (release build) polls every address as its own SNMPv3
# target every INTERVAL seconds. After a first interval to settle, it measures one more INTERVALS intervals: the
# polls that succeeded per target, the slowest and median poll, the server's CPU time per interval (from
# /proc/PID/stat) and its resident memory. Loopback only; starts and stops its agent and server by process id.
# Usage: benches/snmp_scale.sh [TARGETS] [INTERVAL_SECONDS] [INTERVALS]
set -euo pipefail
cd "$(dirname "$0")/.."
targets=${1:-500}
interval=${2:-60}
intervals=${3:-2}
command -v snmpd >/dev/null || { echo "snmpd is not installed (tests/peers/install.sh installs it)" >&2; exit 1; }
cargo build --release --quiet --bin hsmwatch
bin=$PWD/target/release/hsmwatch
dir=$(mktemp -d)
agents=()
server=
cleanup() {
  [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  for agent in "${agents[@]}"; do kill -TERM "$agent" 2>/dev/null && wait "$agent" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
address() { local i=$(($1 - 1)); echo "127.0.$((1 + i / 254)).$((1 + i % 254))"; }
port=$(free_port)

serial=.5.54.54.51.51.49
partition=$serial.4.49.50.51.52
cat >"$dir/luna.data" <<EOF
.1.3.6.1.4.1.12383.3.1.1.1.0 counter64 3858380
.1.3.6.1.4.1.12383.3.1.1.2.0 counter64 385838
.1.3.6.1.4.1.12383.3.1.2.1.0 integer 1
.1.3.6.1.4.1.12383.3.1.2.2.0 gauge 3
.1.3.6.1.4.1.12383.3.1.2.6.0 string Feb 22 15:19:21 2040 GMT
.1.3.6.1.4.1.23629.1.5.1.2.1.1$serial string 66331
.1.3.6.1.4.1.23629.1.5.1.2.1.2$serial string 7.3.0
.1.3.6.1.4.1.23629.1.5.1.2.1.4$serial string Luna K7
.1.3.6.1.4.1.23629.1.5.1.2.1.7$serial integer 1
.1.3.6.1.4.1.23629.1.5.1.2.1.9$serial unsigned 33554432
.1.3.6.1.4.1.23629.1.5.1.2.1.10$serial unsigned 1048576
.1.3.6.1.4.1.23629.1.5.1.4.1.1$partition string 1234
.1.3.6.1.4.1.23629.1.5.1.4.1.2$partition string par1
.1.3.6.1.4.1.23629.1.5.1.4.1.4$partition unsigned 102400
.1.3.6.1.4.1.23629.1.5.1.4.1.5$partition unsigned 50000
EOF
# net-snmp keeps its listening addresses in one string it cuts at about 120 addresses (agentaddress lines
# accumulate into it), so the addresses are shared among agents of at most 100 each, all serving the same data.
per_agent=100
agents=()
for first in $(seq 1 "$per_agent" "$targets"); do
  last=$((first + per_agent - 1)); [ "$last" -gt "$targets" ] && last=$targets
  conf=$dir/agent-$first
  mkdir -p "$conf/persist"
  {
    for i in $(seq "$first" "$last"); do echo "agentaddress udp:$(address "$i"):$port"; done
    echo "[snmp] persistentDir $conf/persist"
    echo "engineID hsmwatch-bench-luna-$first"
    echo "createUser monitorhsm SHA authPass123 AES privPass123"
    echo "rouser monitorhsm priv"
    echo "pass_persist .1.3.6.1.4.1.23629.1.5 /usr/bin/python3 $PWD/tests/peers/luna_snmp.py $dir/luna.data .1.3.6.1.4.1.23629.1.5"
    echo "pass_persist .1.3.6.1.4.1.12383.3.1 /usr/bin/python3 $PWD/tests/peers/luna_snmp.py $dir/luna.data .1.3.6.1.4.1.12383.3.1"
  } >"$conf/snmpd.conf"
  SNMP_PERSISTENT_DIR=$conf/persist MIBS= snmpd -f -Lo -C -c "$conf/snmpd.conf" >"$conf/snmpd.log" 2>&1 &
  agents+=($!)
  for _ in $(seq 100); do
    snmpget -m '' -v3 -l authPriv -u monitorhsm -a SHA -A authPass123 -x AES -X privPass123 -t 0.3 -r 0 \
      "$(address "$last"):$port" .1.3.6.1.2.1.1.3.0 >/dev/null 2>&1 && break
    sleep 0.1
  done
done

tcp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
http=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
  echo "storage: {path: $dir/bench.db}"
  echo "listen: {tcp: [{address: 127.0.0.1:$tcp}]}"
  echo "http: {address: 127.0.0.1:$http}"
  echo "snmp:"
  echo "  defaults: {user: monitorhsm, auth_passphrase_env: BENCH_SNMP_AUTH, priv_passphrase_env: BENCH_SNMP_PRIV, interval: ${interval}s}"
  echo "  targets:"
  for i in $(seq 1 "$targets"); do echo "    - {address: '$(address "$i"):$port', name: luna-$i}"; done
} >"$dir/hsmwatch.yaml"
BENCH_SNMP_AUTH=authPass123 BENCH_SNMP_PRIV=privPass123 "$bin" serve --config "$dir/hsmwatch.yaml" 2>"$dir/serve.log" &
server=$!

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
polls() { curl -s "127.0.0.1:$http/metrics" | awk '/^hsmwatch_snmp_polls_total/ && /outcome="success"/ {sum += $2} END {print sum + 0}'; }
sleep "$interval"
ticks=$(getconf CLK_TCK)
agents_cpu() { local sum=0; for agent in "${agents[@]}"; do sum=$((sum + $(cpu "$agent"))); done; echo "$sum"; }
cpu0=$(cpu "$server"); agent0=$(agents_cpu); polls0=$(polls)
sleep $((interval * intervals))
cpu1=$(cpu "$server"); agent1=$(agents_cpu); polls1=$(polls)
metrics=$(curl -s "127.0.0.1:$http/metrics")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
durations=$(grep '^hsmwatch_snmp_poll_seconds' <<<"$metrics" | awk '{print $2}' | sort -g)
up=$(grep '^hsmwatch_snmp_up' <<<"$metrics" | awk '$2 == 1' | wc -l)
failed=$(grep '^hsmwatch_snmp_polls_total' <<<"$metrics" | awk '/outcome="failure"/ {sum += $2} END {print sum + 0}')
median=$(awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}' <<<"$durations")
slowest=$(tail -1 <<<"$durations")
echo "targets=$targets interval=${interval}s measured_intervals=$intervals"
echo "polls_succeeded=$((polls1 - polls0)) expected=$((targets * intervals)) failed_total=$failed targets_up=$up"
echo "poll_seconds median=$median slowest=$slowest"
echo "server_cpu_seconds_per_interval=$(awk -v a="$cpu0" -v b="$cpu1" -v t="$ticks" -v n="$intervals" 'BEGIN {printf "%.2f", (b - a) / t / n}')"
echo "agent_cpu_seconds_per_interval=$(awk -v a="$agent0" -v b="$agent1" -v t="$ticks" -v n="$intervals" 'BEGIN {printf "%.2f", (b - a) / t / n}') (the snmpd agents, ${#agents[@]} of them; their pass_persist helpers are separate processes)"
echo "server_rss_kib=$rss server_peak_rss_kib=$hwm"
