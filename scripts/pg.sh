#!/usr/bin/env bash
# A project-local PostgreSQL 15 cluster, run as an unprivileged user.
#
#   scripts/pg.sh init  DIR [PORT]   create the cluster in DIR (no-op if it exists)
#   scripts/pg.sh start DIR          start it (no-op if running); waits until ready
#   scripts/pg.sh stop  DIR [MODE]   stop it (MODE: fast (default) | immediate | smart)
#   scripts/pg.sh url   DIR [DB]     print the libpq URL to reach it
#
# The server listens on 127.0.0.1:PORT and on a unix socket inside DIR, trusts
# local connections (it is a throwaway or developer cluster, reachable only from
# this machine), and runs with fsync off for speed (commits still reach the
# OS before they return, so a killed server loses nothing; only an OS crash would) (tests; quickstart data in
# var/ is a demo). As root, it runs as the system user `tokendpg` (created if
# missing), since PostgreSQL refuses to run as root.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGUSER_OS=${TOKEND_PG_OS_USER:-tokendpg}

die() { printf 'pg.sh: error: %s\n' "$*" >&2; exit 1; }
[ -x "$PGBIN/pg_ctl" ] || die "PostgreSQL 15 server binaries not found in $PGBIN (apt-get install postgresql-15)"

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$PGUSER_OS" -- "$@"
  else
    "$@"
  fi
}

ensure_os_user() {
  [ "$(id -u)" -eq 0 ] || return 0
  id "$PGUSER_OS" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PGUSER_OS"
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 init|start|stop|url DIR [ARG]"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

case "$cmd" in
  init)
    port=${3:-$(free_port)}
    if [ -f "$dir/data/PG_VERSION" ]; then exit 0; fi
    ensure_os_user
    if [ "$(id -u)" -eq 0 ]; then chown "$PGUSER_OS" "$dir"; fi
    chmod 700 "$dir"
    as_pg test -w "$dir" || die "$dir is not reachable by user $PGUSER_OS: every parent directory must be searchable (chmod o+x)"
    as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
full_page_writes = off
max_connections = 200
log_min_messages = warning
CONF
    echo "$port" >"$dir/port"
    ;;
  start)
    [ -f "$dir/data/PG_VERSION" ] || die "no cluster in $dir (run: $0 init $dir)"
    if as_pg "$PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then exit 0; fi
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null \
      || { tail -20 "$dir/postgres.log" >&2; die "PostgreSQL did not start"; }
    ;;
  stop)
    mode=${3:-fast}
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null 2>&1 || true
    fi
    ;;
  url)
    db=${3:-postgres}
    echo "postgresql://postgres@127.0.0.1:$(cat "$dir/port")/$db"
    ;;
  *) die "unknown command $cmd" ;;
esac
