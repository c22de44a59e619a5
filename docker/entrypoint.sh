#!/usr/bin/env bash
# Container entrypoint of the tokend image (docker/Dockerfile).
#
#   serve (the default command)  check the configuration, run `tokend migrate`
#                                (retried while the database is not answering yet),
#                                then exec `tokend serve`
#   any other tokend command     run it with the same configuration, e.g.
#                                docker compose run --rm tokend account create acme
#                                docker compose run --rm tokend account grant-scopes acme SCOPE...
#
# Environment:
#   TOKEND_CONFIG              configuration file (default /etc/tokend/tokend.conf)
#   TOKEND_DATABASE_URL        database URL (overrides database_url of the file)
#   TOKEND_PEPPER_FILE         a file holding the pepper, e.g. a docker secret. Its
#                              path is what tokend gets (tokend reads the file itself,
#                              mode 600): the pepper never enters tokend's environment
#   TOKEND_PEPPER              the pepper itself (overrides everything; discouraged:
#                              the environment is visible to `docker inspect` and in
#                              /proc - a warning says so)
#   TOKEND_MIGRATE_DATABASE_URL  the schema owner's URL for `tokend migrate`
#                              (overrides migrate_database_url; default: database_url)
#   TOKEND_DB_PASSWORD_FILE    a file holding the password of database_url's user
#                              (a docker secret); TOKEND_MIGRATE_DB_PASSWORD_FILE: the
#                              one of migrate_database_url's user. Both go to libpq in
#                              a pgpass file on /tmp (mode 600), never the environment;
#                              serve starts after the owner's line is removed from it
#   TOKEND_MIGRATE_TIMEOUT     seconds to wait for the database at start (default 60)
#   TOKEND_SKIP_MIGRATE=1      do not migrate at start (migrations run elsewhere)
#
# Key material is the operator's: a missing pepper or signing key is an error, never
# generated here (a generated one would silently change at every new container).
set -euo pipefail

TOKEND=${TOKEND_BIN:-/opt/tokend/bin/tokend}
CONFIG=${TOKEND_CONFIG:-/etc/tokend/tokend.conf}
MIGRATE_TIMEOUT=${TOKEND_MIGRATE_TIMEOUT:-60}

log() { printf 'entrypoint: %s\n' "$*" >&2; }
die() { printf 'entrypoint: error: %s\n' "$*" >&2; exit 1; }

# The last value of `key = value` in the configuration file (quotes removed), or "".
conf_get() {
  local want=$1 line val out=
  [ -r "$CONFIG" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    [[ $line =~ ^[[:space:]]*([A-Za-z_]+)[[:space:]]*=[[:space:]]*(.*)$ ]] || continue
    [ "${BASH_REMATCH[1]}" = "$want" ] || continue
    val=${BASH_REMATCH[2]}
    val=${val%"${val##*[![:space:]]}"}
    if [[ $val =~ ^\"(.*)\"$ || $val =~ ^\'(.*)\'$ ]]; then val=${BASH_REMATCH[1]}; fi
    out=$val
  done <"$CONFIG"
  printf '%s' "$out"
}

# A path from the configuration, resolved the way tokend does: against its directory.
conf_path() {
  case "$1" in
    /*) printf '%s' "$1" ;;
    *) printf '%s/%s' "$(dirname "$CONFIG")" "$1" ;;
  esac
}

# The user name of a postgresql:// URL, or of a `user=` conninfo ("" if none).
url_user() {
  local u=$1
  if [[ $u =~ ^postgres(ql)?://([^:@/?]+)(:[^@]*)?@ ]]; then
    printf '%s' "${BASH_REMATCH[2]}"
  elif [[ $u =~ (^|[[:space:]])user[[:space:]]*=[[:space:]]*([^[:space:]]+) ]]; then
    printf '%s' "${BASH_REMATCH[2]}"
  fi
}

# One pgpass line: any host, port and database; ':' and '\' escaped.
pgpass_line() {
  local user=$1 file=$2 what=$3 pw
  [ -n "$user" ] || die "$what: no user name in the database URL it is for"
  [ -f "$file" ] || die "$what: $file does not exist (is the secret mounted?)"
  [ -r "$file" ] || die "$what: $file is not readable by uid $(id -u) (chown it to $(id -u), mode 600)"
  pw=$(<"$file")
  pw=${pw%"${pw##*[![:space:]]}"}
  [ -n "$pw" ] || die "$what: $file is empty"
  pw=${pw//\\/\\\\}
  pw=${pw//:/\\:}
  printf '*:*:*:%s:%s\n' "$user" "$pw"
}

# A database URL that carries a password (postgresql://user:PASSWORD@... or password=).
url_has_password() {
  [[ $1 =~ ^postgres(ql)?://[^:@/?]+:[^@]*@ || $1 =~ (^|[[:space:]?&])password[[:space:]]*= ]]
}

load_secrets() {
  # The pepper stays in its file: tokend reads TOKEND_PEPPER_FILE itself.
  if [ -n "${TOKEND_PEPPER:-}" ]; then
    log "warning: TOKEND_PEPPER holds the pepper in the environment (docker inspect, /proc show it);" \
        "mount it as a secret and set TOKEND_PEPPER_FILE instead"
  elif [ -n "${TOKEND_PEPPER_FILE:-}" ]; then
    local f=$TOKEND_PEPPER_FILE
    [ -f "$f" ] || die "TOKEND_PEPPER_FILE: $f does not exist (is the secret mounted?)"
    [ -r "$f" ] || die "TOKEND_PEPPER_FILE: $f is not readable by uid $(id -u) (chown it to $(id -u), mode 600)"
    [ -s "$f" ] || die "TOKEND_PEPPER_FILE: $f is empty"
    case "$f" in /*) ;; *) TOKEND_PEPPER_FILE=$PWD/$f ;; esac
    export TOKEND_PEPPER_FILE
  fi
  local u
  for u in "${TOKEND_DATABASE_URL:-}" "${TOKEND_MIGRATE_DATABASE_URL:-}"; do
    if [ -n "$u" ] && url_has_password "$u"; then
      log "warning: a database URL in the environment carries a password; use TOKEND_DB_PASSWORD_FILE" \
          "/ TOKEND_MIGRATE_DB_PASSWORD_FILE (a pgpass file) instead"
    fi
  done
  # Database passwords: a pgpass file with one line per role, the owner's last.
  if [ -n "${TOKEND_DB_PASSWORD_FILE:-}" ] || [ -n "${TOKEND_MIGRATE_DB_PASSWORD_FILE:-}" ]; then
    local app_url mig_url
    app_url=${TOKEND_DATABASE_URL:-$(conf_get database_url)}
    mig_url=${TOKEND_MIGRATE_DATABASE_URL:-$(conf_get migrate_database_url)}
    PGPASSFILE=$(mktemp /tmp/tokend-pgpass.XXXXXX) || die "cannot create a file in /tmp"
    export PGPASSFILE
    chmod 600 "$PGPASSFILE"
    if [ -n "${TOKEND_DB_PASSWORD_FILE:-}" ]; then
      pgpass_line "$(url_user "$app_url")" "$TOKEND_DB_PASSWORD_FILE" TOKEND_DB_PASSWORD_FILE >>"$PGPASSFILE"
    fi
    if [ -n "${TOKEND_MIGRATE_DB_PASSWORD_FILE:-}" ]; then
      [ -n "$mig_url" ] || die "TOKEND_MIGRATE_DB_PASSWORD_FILE: set TOKEND_MIGRATE_DATABASE_URL (or migrate_database_url) too"
      pgpass_line "$(url_user "$mig_url")" "$TOKEND_MIGRATE_DB_PASSWORD_FILE" TOKEND_MIGRATE_DB_PASSWORD_FILE >>"$PGPASSFILE"
      OWNER_PGPASS_LINES=1
    fi
  fi
  unset TOKEND_DB_PASSWORD_FILE TOKEND_MIGRATE_DB_PASSWORD_FILE
}

# Before serve: the owner's password and URL go (serve never needs them).
drop_owner_secrets() {
  if [ "${OWNER_PGPASS_LINES:-0}" = 1 ]; then
    sed -i '$d' "$PGPASSFILE"
  fi
  unset TOKEND_MIGRATE_DATABASE_URL
}

check_config() {
  [ -f "$CONFIG" ] || die "configuration file $CONFIG not found: mount one there or set TOKEND_CONFIG"
  [ -r "$CONFIG" ] || die "configuration file $CONFIG is not readable by uid $(id -u)"

  if [ -z "${TOKEND_DATABASE_URL:-}" ] && [ -z "$(conf_get database_url)" ]; then
    die "no database: set TOKEND_DATABASE_URL (or database_url in $CONFIG)"
  fi

  # The pepper: TOKEND_PEPPER, TOKEND_PEPPER_FILE, pepper, or pepper_file.
  # tokend itself checks its length and the file's mode.
  if [ -z "${TOKEND_PEPPER:-}" ] && [ -z "${TOKEND_PEPPER_FILE:-}" ] && [ -z "$(conf_get pepper)" ]; then
    local pf
    pf=$(conf_get pepper_file)
    [ -n "$pf" ] || die "no pepper configured. Give tokend its pepper (base64 of 32 random bytes,
  made once with: umask 077; openssl rand -base64 32 > pepper) through a docker secret and
  TOKEND_PEPPER_FILE=/run/secrets/NAME, or TOKEND_PEPPER, or pepper_file in $CONFIG.
  Keep it: every client secret is stored under it."
    pf=$(conf_path "$pf")
    [ -f "$pf" ] || die "pepper_file $pf does not exist"
    [ -r "$pf" ] || die "pepper_file $pf is not readable by uid $(id -u)"
  fi

  local keys k path
  local -a keys_arr
  keys=$(conf_get signing_keys)
  [ -n "$keys" ] || die "no signing_keys in $CONFIG"
  read -r -a keys_arr <<<"$keys"
  for k in "${keys_arr[@]}"; do
    path=$(conf_path "$k")
    [ -f "$path" ] || die "signing key $path is missing. Signing keys are the operator's: make one with
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out signing-es256.pem
  and mount it read-only at $path (readable by uid $(id -u))"
    [ -r "$path" ] || die "signing key $path is not readable by uid $(id -u) (chown it to $(id -u), mode 600)"
  done
}

migrate() {
  local deadline attempt=0 out
  case "$MIGRATE_TIMEOUT" in ''|*[!0-9]*) die "TOKEND_MIGRATE_TIMEOUT: not a number of seconds" ;; esac
  deadline=$((SECONDS + MIGRATE_TIMEOUT))
  while :; do
    attempt=$((attempt + 1))
    if out=$("$TOKEND" --config "$CONFIG" migrate 2>&1); then
      [ -z "$out" ] || printf '%s\n' "$out" >&2
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      printf '%s\n' "$out" >&2
      die "tokend migrate still failing after ${MIGRATE_TIMEOUT}s ($attempt attempts); giving up"
    fi
    log "database not ready (attempt $attempt): $(printf '%s' "$out" | tail -n1); retrying"
    sleep 2
  done
}

# Stop promptly on docker stop while waiting for the database (a shell running as
# PID 1 would otherwise ignore SIGTERM). exec below hands signals to tokend.
trap 'exit 143' TERM
trap 'exit 130' INT

cmd=${1:-serve}
case "$cmd" in
  serve)
    [ $# -eq 0 ] || shift
    load_secrets
    check_config
    if [ "${TOKEND_SKIP_MIGRATE:-0}" = 1 ]; then
      log "TOKEND_SKIP_MIGRATE=1: not migrating"
    else
      migrate
    fi
    drop_owner_secrets
    log "starting tokend serve"
    exec "$TOKEND" --config "$CONFIG" serve "$@"
    ;;
  -h|--help|--version)
    exec "$TOKEND" "$@"
    ;;
  --config)
    load_secrets
    exec "$TOKEND" "$@"
    ;;
  *)
    load_secrets
    exec "$TOKEND" --config "$CONFIG" "$@"
    ;;
esac
