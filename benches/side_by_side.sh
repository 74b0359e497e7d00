#!/usr/bin/env bash
# Side-by-side: the same loggen load (syslog-ng's independent generator) into hsmwatch (TCP -> SQLite, the shipped
# decoders and rules on), rsyslog (imtcp -> omfile) and syslog-ng (network -> sql() on SQLite, flow-control), on
# loopback, one after the other, RUNS times each. For each: messages stored, messages/s from the first sent to the
# last stored, CPU seconds per million messages and peak RSS of the collector; then medians and the ratios.
#
# Needs: rsyslog (apt), and syslog-ng-core + syslog-ng-mod-sql unpacked with dpkg -x (they conflict with rsyslog as
# packages), plus their libraries (apt: libdbd-sqlite3 libivykis0 libnet1 libpcre3 libwrap0). The script fetches and unpacks
# what is missing into $SNG (default /tmp/sng). Run by hand, not in CI: it takes minutes and loads both cores.
#
# Usage: benches/side_by_side.sh [MESSAGES] [CONNECTIONS] [RUNS] [SYSLOGNG_MESSAGES]
#        TRANSPORT=udp benches/side_by_side.sh [MESSAGES] [SENDERS] [RUNS] [RATE_PER_SENDER]
#   UDP: hsmwatch and rsyslog (imudp -> omfile) only; reports stored/sent, the kernel's UDP RcvbufErrors and
#   SndbufErrors (/proc/net/snmp) during the run and, for hsmwatch, the datagrams it received and dropped (queue full),
#   at a fixed loggen rate (default 20,000 msg/s per sender).
#   COLLECTORS="hsmwatch rsyslog" (TCP) runs only those (default: all three).
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-300000}
connections=${2:-4}
runs=${3:-3}
sng_messages=${4:-20000}     # syslog-ng -> SQLite commits row by row: ~2k msg/s, so fewer messages
size=256
SNG=${SNG:-/tmp/sng}

need=()
command -v rsyslogd >/dev/null || need+=(rsyslog)
command -v curl >/dev/null || need+=(curl)
for lib in libdbd-sqlite3 libivykis0 libnet1 libpcre3 libwrap0 sqlite3; do dpkg -s "$lib" >/dev/null 2>&1 || need+=("$lib"); done
if [ ${#need[@]} -gt 0 ]; then apt-get install -y -qq "${need[@]}" >/dev/null; fi
if [ ! -x "$SNG/root/usr/sbin/syslog-ng" ]; then
  mkdir -p "$SNG" && (cd "$SNG" && apt-get download syslog-ng-core syslog-ng-mod-sql >/dev/null 2>&1 && for f in syslog-ng*.deb; do dpkg -x "$f" root; done)
fi
export LD_LIBRARY_PATH="$SNG/root/usr/lib/x86_64-linux-gnu:$SNG/root/usr/lib/syslog-ng${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export SYSLOGNG_PREFIX="$SNG/root/usr"
loggen="$SNG/root/usr/bin/loggen"
cargo build --release --quiet --locked --bin hsmwatch
hsmwatch=$PWD/target/release/hsmwatch

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "no listener on $1" >&2; return 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
peak_rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }

# start_rsyslog MODULE DIR PORT: rsyslogd in the foreground, MODULE (imtcp or imudp) on PORT into DIR/rsyslog.out;
# sets pid.
start_rsyslog() {
  cat > "$2/rsyslog.conf" <<CONF
global(workDirectory="$2")
module(load="$1")
input(type="$1" address="127.0.0.1" port="$3" ruleset="file")
ruleset(name="file") { action(type="omfile" file="$2/rsyslog.out") }
CONF
  rsyslogd -n -i "$2/rsyslog.pid" -f "$2/rsyslog.conf" 2>"$2/r.log" &
  pid=$!
}

# measure NAME PID COUNT_COMMAND EXPECTED PORT: loggen into PORT, wait until the collector is idle (its CPU time stops
# growing: reading its store meanwhile would disturb syslog-ng's SQLite locking), then count what it stored. The
# elapsed time runs from the first message to the collector's last busy moment.
measure() {
  local name=$1 pid=$2 count_cmd=$3 expected=$4 port=$5
  local ticks0 start busy_until last ticks quiet=0
  ticks0=$(cpu_ticks "$pid"); start=$(now)
  "$loggen" --inet --stream --syslog-proto --size "$size" --active-connections "$connections" \
    --rate 1000000 --number "$((expected / connections))" 127.0.0.1 "$port" >/dev/null 2>&1 || true
  last=$(cpu_ticks "$pid"); busy_until=$(now)
  # Sampled every 0.1 s: the run's end is known to that (at 0.5 s, a 2 s run could read as 2.5 s, 20% slower).
  while [ "$quiet" -lt 20 ]; do             # 2 s with at most one tick of CPU per 0.1 s: done
    sleep 0.1
    ticks=$(cpu_ticks "$pid")
    if [ $((ticks - last)) -le 1 ]; then quiet=$((quiet + 1)); else quiet=0; busy_until=$(now); fi
    last=$ticks
  done
  local stored hz
  stored=$(eval "$count_cmd" 2>/dev/null || echo 0); hz=$(getconf CLK_TCK)
  awk -v n="$name" -v s="$stored" -v e="$expected" -v t0="$start" -v t1="$busy_until" -v c0="$ticks0" -v c1="$last" -v hz="$hz" -v rss="$(peak_rss_kib "$pid")" \
    'BEGIN { rate = s / (t1 - t0); cpu = (c1 - c0) / hz; printf "%s stored=%d/%d msg_per_s=%.0f cpu_s_per_million=%.2f peak_rss_mib=%.1f\n", n, s, e, rate, (s ? cpu / s * 1e6 : 0), rss / 1024 }'
}

if [ "${TRANSPORT:-tcp}" = udp ]; then
  rate=${4:-20000}
  # The kernel's UDP counters (/proc/net/snmp, all sockets of the machine): RcvbufErrors (a receive buffer was full)
  # and SndbufErrors (the sender's).
  udp_counter() { awk -v name="$1" '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) col[$i] = i; h = 1 } else print $col[name] }' /proc/net/snmp; }
  udp_run() {   # NAME PID COUNT_COMMAND PORT [OWN_COUNTERS_COMMAND]
    local r0 r1 s0 s1 stored own=""
    r0=$(udp_counter RcvbufErrors); s0=$(udp_counter SndbufErrors)
    "$loggen" --inet --dgram --size "$size" --active-connections "$connections" --rate "$rate" \
      --number "$((messages / connections))" 127.0.0.1 "$4" >/dev/null 2>&1 || true
    sleep 3
    r1=$(udp_counter RcvbufErrors); s1=$(udp_counter SndbufErrors); stored=$(eval "$3" 2>/dev/null || echo 0)
    if [ -n "${5:-}" ]; then own=" $(eval "$5")"; fi
    echo "$1 udp stored=$stored/$(( (messages / connections) * connections )) rcvbuf_errors=$((r1 - r0)) sndbuf_errors=$((s1 - s0))$own rate_per_sender=$rate"
  }
  # What hsmwatch counted itself: datagrams received, and dropped because its queue was full.
  hsmwatch_udp_counts() {
    curl -s "http://127.0.0.1:$1/metrics" | awk '/^hsmwatch_messages_received_total\{.*transport="udp"/ { r += $NF }
      /^hsmwatch_udp_dropped_total/ { d += $NF } END { printf "received=%d queue_dropped=%d", r, d }'
  }
  for run in $(seq 1 "$runs"); do
    dir=$(mktemp -d)
    p=$(port)
    http=$(port)
    "$hsmwatch" serve --udp "127.0.0.1:$p" --tcp "127.0.0.1:$(port)" --http "127.0.0.1:$http" --db "$dir/h.db" --rules rules 2>"$dir/h.log" &
    pid=$!; sleep 1
    udp_run hsmwatch "$pid" "sqlite3 $dir/h.db 'select count(*) from events'" "$p" "hsmwatch_udp_counts $http"
    kill -TERM "$pid"; wait "$pid" || true
    p=$(port)
    start_rsyslog imudp "$dir" "$p"; sleep 1
    udp_run rsyslog "$pid" "wc -l < $dir/rsyslog.out" "$p"
    kill -TERM "$pid"; wait "$pid" || true
    rm -rf "$dir"
  done
  exit 0
fi

collectors=${COLLECTORS:-hsmwatch rsyslog syslog-ng}
runs_collector() { [[ " $collectors " == *" $1 "* ]]; }
results=$(mktemp)
for run in $(seq 1 "$runs"); do
  dir=$(mktemp -d)
  expected=$(( (messages / connections) * connections ))
  if runs_collector hsmwatch; then
  # hsmwatch: the shipped decoders and rules, every line committed to SQLite.
  p=$(port)
  "$hsmwatch" serve --tcp "127.0.0.1:$p" --http 127.0.0.1:0 --db "$dir/h.db" --rules rules 2>"$dir/h.log" &
  pid=$!; wait_port "$p"
  measure hsmwatch "$pid" "sqlite3 $dir/h.db 'select count(*) from events'" "$expected" "$p" | tee -a "$results"
  kill -TERM "$pid"; wait "$pid" || true
  fi

  if runs_collector rsyslog; then
  # rsyslog: imtcp -> omfile, the classic flat-file collector.
  p=$(port)
  start_rsyslog imtcp "$dir" "$p"; wait_port "$p"
  measure rsyslog "$pid" "wc -l < $dir/rsyslog.out" "$expected" "$p" | tee -a "$results"
  kill -TERM "$pid"; wait "$pid" || true
  fi

  if runs_collector syslog-ng; then
  # syslog-ng: network -> sql() on SQLite with flow-control (without it, it drops what it cannot store).
  p=$(port)
  sng_expected=$(( (sng_messages / connections) * connections ))
  cat > "$dir/syslog-ng.conf" <<CONF
@version: 3.38
options { threaded(yes); };
source s_net { syslog(ip(127.0.0.1) port($p) transport(tcp) max-connections(100) log-iw-size(10000)); };
destination d_sql { sql(type(sqlite3) database("$dir/s.db") table("messages")
  columns("datetime", "host", "program", "pid", "message") values("\${R_DATE}", "\${HOST}", "\${PROGRAM}", "\${PID}", "\${MSGONLY}")
  indexes() flush-lines(1000)); };
log { source(s_net); destination(d_sql); flags(flow-control); };
CONF
  "$SNG/root/usr/sbin/syslog-ng" -F -f "$dir/syslog-ng.conf" --module-path "$SNG/root/usr/lib/syslog-ng/3.38" \
    --persist-file "$dir/sng.persist" --pidfile "$dir/sng.pid" --control "$dir/sng.ctl" 2>"$dir/s.log" &
  pid=$!; wait_port "$p"
  measure syslog-ng "$pid" "sqlite3 $dir/s.db 'select count(*) from messages'" "$sng_expected" "$p" | tee -a "$results"
  kill -TERM "$pid"; wait "$pid" || true
  fi
  rm -rf "$dir"
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
field() { grep "^$1 " "$results" | sed -E "s/.*$2=([0-9.]+).*/\1/" | median; }
echo
printf '%-10s %12s %22s %14s\n' collector "msg/s" "CPU s per million" "peak RSS MiB"
for c in $collectors; do
  printf '%-10s %12s %22s %14s\n' "$c" "$(field "$c" msg_per_s)" "$(field "$c" cpu_s_per_million)" "$(field "$c" peak_rss_mib)"
done
h=$(field hsmwatch msg_per_s); r=$(field rsyslog msg_per_s); s=$(field syslog-ng msg_per_s)
if runs_collector hsmwatch && runs_collector rsyslog; then awk -v h="$h" -v r="$r" 'BEGIN { printf "\nratio (msg/s): hsmwatch/rsyslog %.2f\n", h / r }'; fi
if runs_collector hsmwatch && runs_collector syslog-ng; then awk -v h="$h" -v s="$s" 'BEGIN { printf "ratio (msg/s): hsmwatch/syslog-ng %.1f\n", h / s }'; fi
rm -f "$results"
