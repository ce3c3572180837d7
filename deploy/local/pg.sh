#!/usr/bin/env bash
# A private PostgreSQL cluster for nokstream under a data directory.
#   pg.sh start DIR [PORT]  initialise if needed, start, print the DSN
#   pg.sh stop DIR
# It listens on 127.0.0.1:PORT and a unix socket in DIR. As root, the server
# runs as the "postgres" system user (PostgreSQL refuses to run as root).
set -euo pipefail
cmd=${1:?usage: pg.sh start|stop DIR [PORT]}
dir=$(realpath -m "${2:?data directory}")
port=${3:-5433}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -x "$bindir/pg_ctl" ] || { echo "pg.sh: PostgreSQL not installed; run 'make run' or deploy/local/deps.sh" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$dir"
    # Every parent must be traversable by the postgres user.
    p="$dir"; while [ "$p" != "/" ]; do p=$(dirname "$p"); chmod o+x "$p" 2>/dev/null || true; done
  fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    as_pg "$bindir/initdb" -D "$dir" -U nokstream --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if ! as_pg "$bindir/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    as_pg "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >/dev/null
  fi
  for _ in $(seq 1 100); do
    "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    sleep 0.1
  done
  "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U nokstream -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='nokstream'" | grep -q 1 ||
    "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U nokstream -d postgres -c "CREATE DATABASE nokstream" >/dev/null
  echo "postgres://nokstream@127.0.0.1:$port/nokstream?sslmode=disable"
  ;;
stop)
  if [ -f "$dir/PG_VERSION" ]; then
    as_pg "$bindir/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
  fi
  ;;
*) echo "usage: pg.sh start|stop DIR [PORT]" >&2; exit 2 ;;
esac
