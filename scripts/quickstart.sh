#!/usr/bin/env bash
# From a fresh clone to a running tokend on 127.0.0.1:8080, in one command.
#
#   scripts/quickstart.sh [--port N] [--no-serve]
#
# Installs the dependencies (scripts/install-deps.sh), builds (scripts/build.sh
# normal), and sets up everything else under var/ (ignored by git):
#   var/pg/                a project-local PostgreSQL 15 cluster (scripts/pg.sh), run as
#                          an unprivileged user, on 127.0.0.1 and a unix socket only,
#                          passwords required (var/pg/pgpass, mode 600); the database
#                          tokend is owned by tokend_owner, which runs the migrations,
#                          and tokend serves as the role tokend (member of tokend_app,
#                          no superuser, owns nothing: README, "Database roles")
#   var/pepper             the pepper (base64 of 32 random bytes, mode 600)
#   var/signing-es256.pem  the ES256 token signing key (mode 600)
#   var/tokend.conf        the configuration (see config/tokend.conf.example)
# then migrates the database, creates a demo account `demo`, the scopes api:read and
# api:write, and a key `demo` holding both, prints the key's ID and secret (once), and
# runs `tokend serve` in the foreground.
#
# Run again, it reuses all of it: nothing is regenerated and no second key is made.
# Start from scratch with: scripts/pg.sh stop var/pg && rm -rf var
#
# Options:
#   --port N     listen on 127.0.0.1:N instead of 8080 (updates var/tokend.conf)
#   --no-serve   do everything except starting tokend (PostgreSQL is left running)
#
# Works as root (PostgreSQL then runs as the system user tokendpg) or as a user who
# can use sudo for the package installation.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VAR="$ROOT/var"
CONF="$VAR/tokend.conf"
TOKEND="$ROOT/build/tokend"
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
DB_NAME=tokend
ACCOUNT=demo
KEY_NAME=demo
SCOPES=(api:read api:write)

log() { printf 'quickstart: %s\n' "$*" >&2; }
die() { printf 'quickstart: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

serve=1
port=
while [ $# -gt 0 ]; do
  case "$1" in
    --no-serve) serve=0 ;;
    --port)
      [ $# -ge 2 ] || die "--port needs a value"
      port=$2; shift ;;
    --port=*) port=${1#--port=} ;;
    -h|--help) usage; exit 0 ;;
    *) printf 'quickstart: unknown option: %s\nusage: %s [--port N] [--no-serve]  (--help for more)\n' \
         "$1" "$0" >&2
       exit 2 ;;
  esac
  shift
done
if [ -n "$port" ]; then
  case "$port" in
    ''|*[!0-9]*) die "--port: not a number: $port" ;;
  esac
  port=$((10#$port))
  if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then die "--port: out of range (1-65535): $port"; fi
fi

# The environment overrides of tokend would silently replace what this script sets
# up in var/; the quickstart instance uses var/ only.
unset TOKEND_DATABASE_URL TOKEND_MIGRATE_DATABASE_URL TOKEND_PEPPER

# As root, PostgreSQL runs as the system user tokendpg, which must be able to enter
# every directory above var/: say so now rather than after the build.
if [ "$(id -u)" -eq 0 ]; then
  d=$ROOT
  while :; do
    perm=$(stat -c %A "$d")
    case "${perm:9:1}" in
      x|t) ;;
      *) die "PostgreSQL refuses to run as root, so it runs as the user tokendpg, which cannot
  enter $d (mode $perm) to reach var/pg. Either let other users pass through it
  (not list it): chmod o+x $d
  or put tokend in a directory they can traverse, e.g. /opt or /srv." ;;
    esac
    [ "$d" != / ] || break
    d=$(dirname "$d")
  done
fi

tokend() { "$TOKEND" --config "$CONF" "$@"; }

# Reads JSON on stdin; prints one line per element of the (possibly wrapped) list.
#   names: the scope name            keys: client_id<TAB>name<TAB>state
json_rows() {
  /usr/bin/python3 -c '
import json, sys
mode = sys.argv[1]
data = json.load(sys.stdin)
if isinstance(data, dict):
    for k in ("scopes", "keys", "items", "data"):
        if isinstance(data.get(k), list):
            data = data[k]
            break
    else:
        data = []
for item in data:
    if mode == "names":
        print(item if isinstance(item, str) else item.get("name", ""))
    else:
        kid = item.get("client_id") or item.get("key_id") or item.get("id") or ""
        print("%s\t%s\t%s" % (kid, item.get("name", ""), item.get("state", "")))
' "$1"
}

# ---------------------------------------------------------------------------
# Progress goes to stderr; stdout carries only the demo key's one-time display.
log "1/7 dependencies (scripts/install-deps.sh)"
"$ROOT/scripts/install-deps.sh" >&2

log "2/7 build (scripts/build.sh normal)"
"$ROOT/scripts/build.sh" normal >&2
[ -x "$TOKEND" ] || die "the build did not produce $TOKEND"

# ---------------------------------------------------------------------------
log "3/7 PostgreSQL 15 cluster in var/pg"
mkdir -p "$VAR"
# PostgreSQL runs as tokendpg when we are root (checked at the start): it must be
# able to enter var/.
chmod 755 "$VAR"
"$ROOT/scripts/pg.sh" init "$VAR/pg"
"$ROOT/scripts/pg.sh" start "$VAR/pg"

PSQL="$PGBIN/psql"
[ -x "$PSQL" ] || PSQL=psql
admin_url=$("$ROOT/scripts/pg.sh" url "$VAR/pg" postgres postgres)
db_url=$("$ROOT/scripts/pg.sh" url "$VAR/pg" "$DB_NAME" tokend)
migrate_url=$("$ROOT/scripts/pg.sh" url "$VAR/pg" "$DB_NAME" tokend_owner)
# The roles and the database owned by tokend_owner (idempotent; a database made by
# an older quickstart, owned by postgres, is handed over to tokend_owner).
TOKEND_OWNER_PASSWORD_FILE="$VAR/pg/secrets/tokend_owner" TOKEND_APP_PASSWORD_FILE="$VAR/pg/secrets/tokend" \
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -v dbname="$DB_NAME" -v app_user=tokend \
    -f "$ROOT/scripts/db-roles.sql" "$admin_url" >/dev/null \
  || die "could not set up the database $DB_NAME and its roles (scripts/db-roles.sql); see var/pg/postgres.log"
log "database $DB_NAME: owned by tokend_owner; tokend connects as tokend"

# ---------------------------------------------------------------------------
log "4/7 secrets and configuration in var/"
if [ -s "$VAR/pepper" ]; then
  log "pepper: reusing var/pepper"
else
  (umask 077 && openssl rand -base64 32 >"$VAR/pepper.tmp" && mv "$VAR/pepper.tmp" "$VAR/pepper") \
    || die "could not generate var/pepper"
  log "pepper: generated var/pepper"
fi
chmod 600 "$VAR/pepper"

if [ -s "$VAR/signing-es256.pem" ]; then
  log "signing key: reusing var/signing-es256.pem"
else
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
     -out "$VAR/signing-es256.pem.tmp" 2>/dev/null \
   && mv "$VAR/signing-es256.pem.tmp" "$VAR/signing-es256.pem") \
    || die "could not generate var/signing-es256.pem (openssl genpkey)"
  log "signing key: generated var/signing-es256.pem (ES256, P-256)"
fi
chmod 600 "$VAR/signing-es256.pem"

conf_port() {
  sed -n 's/^[[:space:]]*listen_port[[:space:]]*=[[:space:]]*\([0-9][0-9]*\)[[:space:]]*$/\1/p' "$CONF" | tail -n1
}

if [ -f "$CONF" ]; then
  log "configuration: reusing var/tokend.conf"
  # A re-created var/pg may listen on another port, and an older quickstart connected
  # as postgres: follow both (our own URLs only: postgres/tokend/tokend_owner on
  # 127.0.0.1, database tokend).
  own='postgresql://(postgres|tokend|tokend_owner)@127\.0\.0\.1:[0-9]+/'"$DB_NAME"'(\?passfile=[^ ]*)?'
  if grep -qE "^database_url = $own\$" "$CONF" && ! grep -qxF "database_url = $db_url" "$CONF"; then
    sed -i -E "s#^database_url = $own\$#database_url = $db_url#" "$CONF"
    log "configuration: database_url now $db_url"
  fi
  if grep -qE "^migrate_database_url = $own\$" "$CONF"; then
    sed -i -E "s#^migrate_database_url = $own\$#migrate_database_url = $migrate_url#" "$CONF"
  elif ! grep -qE '^[[:space:]]*migrate_database_url[[:space:]]*=' "$CONF" \
       && grep -qxF "database_url = $db_url" "$CONF"; then
    sed -i "s#^database_url = .*#&\nmigrate_database_url = $migrate_url#" "$CONF"
    log "configuration: migrations now run as tokend_owner (migrate_database_url)"
  fi
  old_port=$(conf_port)
  old_port=${old_port:-8080}
  if [ -n "$port" ] && [ "$port" != "$old_port" ]; then
    log "configuration: switching var/tokend.conf from port $old_port to $port"
    if grep -q '^[[:space:]]*listen_port[[:space:]]*=' "$CONF"; then
      sed -i "s|^[[:space:]]*listen_port[[:space:]]*=.*|listen_port = $port|" "$CONF"
    else
      printf 'listen_port = %s\n' "$port" >>"$CONF"
    fi
    sed -i "s|^\([[:space:]]*issuer[[:space:]]*=[[:space:]]*http://127\.0\.0\.1\):${old_port}[[:space:]]*\$|\1:${port}|" "$CONF"
  fi
else
  port=${port:-8080}
  cat >"$CONF.tmp" <<CONF
# tokend configuration written by scripts/quickstart.sh (a local demo setup).
# Every key is described in config/tokend.conf.example; relative paths are
# resolved against this directory (var/).
database_url = $db_url
migrate_database_url = $migrate_url
pepper_file = pepper
signing_keys = signing-es256.pem
issuer = http://127.0.0.1:$port
listen_address = 127.0.0.1
listen_port = $port
CONF
  mv "$CONF.tmp" "$CONF"
  log "configuration: wrote var/tokend.conf"
fi
port=$(conf_port)
port=${port:-8080}
base_url="http://127.0.0.1:$port"

# ---------------------------------------------------------------------------
log "5/7 database migrations"
tokend migrate >&2 || die "tokend migrate failed"

# ---------------------------------------------------------------------------
log "6/7 demo account, scopes and key"
rc=0
err=$(tokend account show "$ACCOUNT" 2>&1 >/dev/null) || rc=$?
case "$rc" in
  0) log "account $ACCOUNT: exists" ;;
  1) tokend account create "$ACCOUNT" --name "Demo account" >/dev/null \
       || die "could not create account $ACCOUNT"
     log "account $ACCOUNT: created" ;;
  *) die "tokend account show $ACCOUNT failed (exit $rc): $err" ;;
esac

scope_json=$(tokend scope list --json) || die "tokend scope list failed"
have_scopes=$(printf '%s' "$scope_json" | json_rows names) \
  || die "could not parse the output of tokend scope list --json"
for s in "${SCOPES[@]}"; do
  if [[ $'\n'"$have_scopes"$'\n' == *$'\n'"$s"$'\n'* ]]; then
    log "scope $s: exists"
  else
    tokend scope add "$s" --description "Demo scope ($s)" >/dev/null || die "could not add scope $s"
    log "scope $s: added"
  fi
done
# Every key's scopes must be granted to its account first (granting again changes nothing).
tokend account grant-scopes "$ACCOUNT" "${SCOPES[@]}" >/dev/null || die "could not grant the scopes to $ACCOUNT"
log "scopes granted to account $ACCOUNT"

key_json=$(tokend key list --account "$ACCOUNT" --json) || die "tokend key list failed"
key_rows=$(printf '%s' "$key_json" | json_rows keys) \
  || die "could not parse the output of tokend key list --json"
# A key that can still get tokens: prefer the one named demo.
usable=$(printf '%s\n' "$key_rows" | awk -F'\t' '$1 != "" && $3 !~ /^(disabled|revoked|deleted|expired)$/' )
# (awk reads all its input: an early exit could kill the writer with SIGPIPE.)
existing=$(printf '%s\n' "$usable" | awk -F'\t' -v n="$KEY_NAME" '$2 == n && !f { print $1; f = 1 }')
[ -n "$existing" ] || existing=$(printf '%s\n' "$usable" | awk -F'\t' 'NF && !f { print $1; f = 1 }')

curl_hint() { printf "curl -s -u %s:%s -d grant_type=client_credentials %s/oauth2/token" "$1" "$2" "$base_url"; }

if [ -n "$existing" ]; then
  log "key: reusing $existing"
  cat <<EOF

  Demo API key (reused): $existing
  Its secret was shown once, when the key was created, and cannot be shown again.
  If you no longer have it, create another key (the secret is printed once):
    build/tokend --config var/tokend.conf key create --account $ACCOUNT --name demo2 --scopes "${SCOPES[*]}"
  Get a token:
    $(curl_hint "$existing" SECRET)

EOF
else
  # The secret lives only in this shell's memory: never in a file or a command line.
  created=$(tokend key create --account "$ACCOUNT" --name "$KEY_NAME" --scopes "${SCOPES[*]}" --json) \
    || die "could not create the demo key"
  creds=$(printf '%s' "$created" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["client_id"]); print(d["client_secret"])') \
    || die "could not parse the output of tokend key create --json"
  created=
  client_id=$(printf '%s\n' "$creds" | sed -n 1p)
  client_secret=$(printf '%s\n' "$creds" | sed -n 2p)
  creds=
  log "key: created $client_id"
  # printf, not a here-document: bash may back a here-document with a temporary file.
  printf '\n  %s\n' "=========================================================================="
  printf '  Demo API key created (account %s, scopes: %s)\n\n' "$ACCOUNT" "${SCOPES[*]}"
  printf '    client_id:     %s\n' "$client_id"
  printf '    client_secret: %s\n\n' "$client_secret"
  printf '  %s\n' "The secret is shown ONCE, now. tokend stores only a keyed hash of it and" \
                 "cannot show it again: copy it somewhere safe."
  printf '\n  %s\n' "Get a token (once tokend runs):"
  printf '    %s\n' "$(curl_hint "$client_id" "$client_secret")"
  printf '  %s\n\n' "=========================================================================="
  client_secret=
fi

# ---------------------------------------------------------------------------
if [ "$serve" -eq 0 ]; then
  log "7/7 done (--no-serve). Start tokend with: build/tokend --config var/tokend.conf serve"
  log "PostgreSQL is still running; stop it with: scripts/pg.sh stop var/pg"
  exit 0
fi

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  die "something already listens on 127.0.0.1:$port (another tokend?). Stop it, or use --port N"
fi
log "7/7 tokend serving on $base_url (Ctrl-C stops it)"
log "endpoints: $base_url/oauth2/token  $base_url/.well-known/jwks.json  $base_url/healthz"
log "PostgreSQL keeps running after tokend stops; stop it with: scripts/pg.sh stop var/pg"
exec "$TOKEND" --config "$CONF" serve
