# Sourced by the ingest benchmarks: what their servers run with and what their senders send.

# rules_dir SETTING DIR: the rules directory a server runs with: the shipped one for `on`, else no_rules_dir's copy.
rules_dir() {
  if [ "$1" = on ]; then echo rules; else no_rules_dir "$2"; fi
}

# no_rules_dir DIR: a copy of the shipped rules directory (decoders, SNMP definitions) in DIR/norules with every rule
# disabled (`enabled: false`: loaded and checked, never evaluated), for RULES=off; prints its path. A directory
# without rule files would be refused as a likely mistake.
no_rules_dir() {
  rm -rf "$1/norules"
  cp -r rules "$1/norules"
  sed -i '/^id:/a enabled: false' "$1"/norules/*.yaml
  echo "$1/norules"
}

# live_mix DB MESSAGES FILE: writes MESSAGES lines of the history's traffic mix (examples/history_lines: 50 HSMs,
# their users, client addresses and actions) to FILE, spread over an hour that starts a day after DB's newest event:
# live lines, newer than the history, on a day of their own. The indexes by day and address are written at random
# within a day, so runs piling their lines into one day would measure that day's growth, not the history's size.
live_mix() {
  local newest
  newest=$(sqlite3 "$1" "SELECT coalesce(max(ts) / 1000000, strftime('%s')) + 86400 + 3600 FROM events")
  target/release/examples/history_lines "$2" "$(date -u -d "@$newest" +%Y-%m-%dT%H:%M:%SZ)" 0.04 > "$3"
}
