#!/usr/bin/env bash
# A project-local PostgreSQL 15 cluster, run as an unprivileged user.
#
#   scripts/pg.sh init  DIR [PORT]   create the cluster in DIR (no-op if it exists; a
#                                    cluster made by an older pg.sh, with trust, is
#                                    given passwords and roles, and left running)
#   scripts/pg.sh start DIR          start it (no-op if running); waits until ready
#   scripts/pg.sh stop  DIR [MODE]   stop it (MODE: fast (default) | immediate | smart)
#   scripts/pg.sh url   DIR [DB [ROLE]]  print the libpq URL to reach it as ROLE
#                                    (postgres (default), tokend_owner or tokend)
#
# The server listens on 127.0.0.1:PORT and on a unix socket inside DIR and asks every
# client for a password (scram-sha-256, TCP and socket alike; no trust). Roles, with
# random passwords generated at init (scripts/db-roles.sql):
#   postgres      the superuser: creates databases (tests, quickstart), nothing else
#   tokend_owner  owns tokend's databases and schema; runs `tokend migrate`
#   tokend        member of tokend_app: runs `tokend serve` and the CLI
# The passwords are in DIR/pgpass (mode 600, the invoking user's), which the URLs
# name (passfile=): no password on a command line or in a config file.
# It runs with fsync off for speed (commits still reach the OS before they return, so
# a killed server loses nothing; only an OS crash would) (tests; quickstart data in
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

start_server() {
  if as_pg "$PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then return 0; fi
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null \
    || { tail -20 "$dir/postgres.log" >&2; die "PostgreSQL did not start"; }
}

# Random passwords for the three roles: DIR/secrets/ROLE and DIR/pgpass (mode 600).
make_passwords() {
  local r
  (umask 077 && mkdir -p "$dir/secrets")
  : >"$dir/pgpass.tmp"
  chmod 600 "$dir/pgpass.tmp"
  for r in postgres tokend_owner tokend; do
    (umask 077 && openssl rand -hex 24 >"$dir/secrets/$r") || die "openssl rand failed"
    printf '*:*:*:%s:%s\n' "$r" "$(cat "$dir/secrets/$r")" >>"$dir/pgpass.tmp"
  done
}

# Roles tokend_owner, tokend_app and tokend (scripts/db-roles.sql), as the superuser.
make_roles() {
  PGPASSFILE="$dir/pgpass.tmp" TOKEND_OWNER_PASSWORD_FILE="$dir/secrets/tokend_owner" \
  TOKEND_APP_PASSWORD_FILE="$dir/secrets/tokend" \
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -v app_user=tokend -f "$ROOT/scripts/db-roles.sql" \
      "postgresql://postgres@127.0.0.1:$(cat "$dir/port")/postgres" >/dev/null \
    || die "could not create the database roles (scripts/db-roles.sql)"
  mv "$dir/pgpass.tmp" "$dir/pgpass"
}

# A cluster made by an older pg.sh trusts every local client: give the superuser a
# password, make the roles, then ask for passwords (pg_hba.conf) from now on.
secure_old_cluster() {
  printf 'pg.sh: %s: adding passwords and the tokend roles to a cluster that trusted local clients\n' "$dir" >&2
  make_passwords
  start_server
  printf '\\set pw `cat "%s"`\nALTER ROLE postgres PASSWORD :%s;\n' "$dir/secrets/postgres" "'pw'" \
    | "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "postgresql://postgres@127.0.0.1:$(cat "$dir/port")/postgres" >/dev/null \
    || die "could not set the superuser's password"
  make_roles
  as_pg sh -c 'cat >"$1"' sh "$dir/data/pg_hba.conf" <<HBA
# scripts/pg.sh: passwords (scram-sha-256) for every client; see DIR/pgpass.
local   all             all                                     scram-sha-256
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
HBA
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" reload >/dev/null
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 init|start|stop|url DIR [ARG]"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

case "$cmd" in
  init)
    port=${3:-$(free_port)}
    if [ -f "$dir/data/PG_VERSION" ]; then
      [ -s "$dir/pgpass" ] || secure_old_cluster
      exit 0
    fi
    ensure_os_user
    if [ "$(id -u)" -eq 0 ]; then chown "$PGUSER_OS" "$dir"; fi
    chmod 700 "$dir"
    as_pg test -w "$dir" || die "$dir is not reachable by user $PGUSER_OS: every parent directory must be searchable (chmod o+x)"
    make_passwords
    # initdb reads the superuser's password from a file of the server's user.
    as_pg sh -c 'umask 077 && cat >"$1"' sh "$dir/initdb.pw" <"$dir/secrets/postgres"
    as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres --auth-local=scram-sha-256 --auth-host=scram-sha-256 \
      --pwfile="$dir/initdb.pw" -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { as_pg rm -f "$dir/initdb.pw"; cat "$dir/initdb.log" >&2; die "initdb failed"; }
    as_pg rm -f "$dir/initdb.pw"
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
password_encryption = scram-sha-256
fsync = off
full_page_writes = off
max_connections = 200
log_min_messages = warning
CONF
    echo "$port" >"$dir/port"
    start_server
    make_roles
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    ;;
  start)
    [ -f "$dir/data/PG_VERSION" ] || die "no cluster in $dir (run: $0 init $dir)"
    start_server
    ;;
  stop)
    mode=${3:-fast}
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null 2>&1 || true
    fi
    ;;
  url)
    db=${3:-postgres}
    role=${4:-postgres}
    echo "postgresql://$role@127.0.0.1:$(cat "$dir/port")/$db?passfile=$dir/pgpass"
    ;;
  *) die "unknown command $cmd" ;;
esac
