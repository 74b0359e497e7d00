# Sourced by the PostgreSQL benchmarks: a PostgreSQL cluster of their own (initdb in a directory they name, as the
# postgres user when run as root), its server on a free loopback port with durability as SQLite's WAL with
# synchronous=NORMAL has it (synchronous_commit=off: commits are not flushed one by one), stopped by its process id.

# pg_cluster_start DIR SHARED_BUFFERS: makes the cluster in DIR/data and starts its server; sets pg_bin (the server's
# programs), pg_port and pg_server (its process id). The server logs to DIR/postgres.log.
pg_cluster_start() {
  local dir=$1 buffers=$2 as_server=()
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    echo "PostgreSQL's server is not installed (tests/peers/install.sh installs it)" >&2
    exit 1
  fi
  if [ "$(id -u)" = 0 ]; then
    as_server=(setpriv --reuid=postgres --regid=postgres --init-groups --)
    chown postgres: "$dir"
  fi
  "${as_server[@]}" "$pg_bin/initdb" -D "$dir/data" -U hsmwatch --auth=trust -E UTF8 --locale=C.UTF-8 > "$dir/initdb.log"
  pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${as_server[@]}" "$pg_bin/postgres" -D "$dir/data" -p "$pg_port" -k "$dir" -c listen_addresses=127.0.0.1 \
    -c shared_buffers="$buffers" -c synchronous_commit=off -c max_wal_size=1GB > "$dir/postgres.log" 2>&1 &
  pg_server=$!
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null && return; sleep 0.1; done
  echo "PostgreSQL did not start: $(tail -5 "$dir/postgres.log")" >&2
  exit 1
}

# pg_cluster_stop: a fast shutdown of the server pg_cluster_start started, waiting until it exits.
pg_cluster_stop() {
  if [ -n "${pg_server:-}" ]; then
    kill -INT "$pg_server" 2>/dev/null && wait "$pg_server" 2>/dev/null || true
  fi
  pg_server=
}
