#!/usr/bin/env bash
# The fault suite's long runs: the tests of tests/faults/suite.rs with every count multiplied by SCALE (default 10),
# and the relay tests of tests/faults/relay.rs at their own counts, in a release build, one test at a time, each
# timed. Loopback only; each test is bounded and stops by itself. Usage: benches/faults.sh [SCALE]
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-10}
ulimit -n 65536 2>/dev/null || true
for test in \
  suite::sustained_tcp_over_several_connections_loses_nothing \
  suite::kill_9_under_load_keeps_a_gapless_committed_prefix_and_the_server_resumes \
  suite::a_full_database_slows_the_sender_and_storing_resumes_once_space_is_back \
  suite::hostile_frames_leave_the_server_serving \
  suite::two_thousand_connections_with_random_disconnects \
  suite::a_thousand_idle_and_dribbling_connections_do_not_hold_back_a_normal_sender \
  suite::tricklers_are_not_starved_by_a_flood \
  relay::an_rsyslog_relay_resends_across_an_hsmwatch_restart \
  relay::the_shipped_rsyslog_snippet_resends_across_an_hsmwatch_restart \
  relay::the_shipped_syslog_ng_snippet_resends_across_an_hsmwatch_restart
do
  start=$(date +%s.%N)
  if HSMWATCH_FAULT_SCALE=$scale cargo test --release --quiet --locked --test faults "$test" -- --exact --test-threads=1 >/tmp/faults.$$.log 2>&1; then
    result=passed
  else
    result=FAILED
    # The panic message first: a backtrace alone would push it out of the tail.
    grep -A6 'panicked at' /tmp/faults.$$.log || true
    tail -30 /tmp/faults.$$.log
  fi
  printf '%-90s %s in %.1f s (scale %s)\n' "$test" "$result" "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')" "$scale"
done
rm -f /tmp/faults.$$.log
