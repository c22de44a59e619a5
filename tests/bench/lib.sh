# Shared by tests/bench/run.sh and tests/bench/introspect.sh (sourced, not run):
# checks, a temp dir with a private copy of tokend, cleanup of everything started,
# a throwaway PostgreSQL with a migrated database, a tokend config, and the helpers
# both scripts use (tokend, start_tokend, stop_tokend, wrk_start/wrk_wait, field, ...).
#
# Sets ROOT, HERE, BIN, PGBIN, PY on load; the script then calls, in this order,
#   bench_check_ints VAR...           each VAR a positive integer
#   bench_check_tools                 the tokend binary, wrk, openssl, curl, python3, psql
#   bench_tmp PREFIX                  temp dir /tmp/PREFIX-XXXXXX, private binary, traps
#   bench_header_load                 the "load" lines of the header (sets LOAD0)
#   bench_setup [CONFIG_LINE...]      PostgreSQL, keys, config (plus these lines), migrate,
#                                     scope bench:read, account bench
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/bench"
BIN=${TOKEND_BIN:-$ROOT/build/tokend}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
note() { printf 'bench: %s\n' "$*" >&2; }

bench_check_ints() {
  local v
  for v in "$@"; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
  done
}

bench_check_tools() {
  local t
  [ -x "$BIN" ] || die "tokend binary not found: $BIN (scripts/build.sh normal, or set TOKEND_BIN)"
  for t in wrk openssl curl "$PY"; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (Debian: apt-get install wrk openssl curl python3)"
  done
  PSQL="$PGBIN/psql"; [ -x "$PSQL" ] || PSQL=$(command -v psql) || die "psql not found (postgresql-client-15)"
}

# --------------------------------------------------------------------------
# Temp dir, and cleanup of everything started
# --------------------------------------------------------------------------
TOKEND_PID=""; WRK_PID=""; PERF_PID=""

bench_tmp() {   # $1: name prefix of the temp dir
  TMP=$(mktemp -d "/tmp/$1-XXXXXX")
  chmod 755 "$TMP"              # scripts/pg.sh runs PostgreSQL as tokendpg when we are root
  PG="$TMP/pg"

  # Run a private copy of the binary (and of libtokend when it is a shared library):
  # a rebuild during the run then neither changes what is measured nor hides perf's symbols.
  private_copy "$BIN" "$TMP/bin"
  ORIG_BIN=$BIN
  BIN="$TMP/bin/tokend"
  export LD_LIBRARY_PATH="$TMP/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

stop_tokend() {
  [ -n "$TOKEND_PID" ] || return 0
  if kill -0 "$TOKEND_PID" 2>/dev/null; then
    kill -TERM "$TOKEND_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$TOKEND_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$TOKEND_PID" 2>/dev/null || true
  fi
  wait "$TOKEND_PID" 2>/dev/null || true
  TOKEND_PID=""
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "$WRK_PID" "$PERF_PID" "${FLOOR_PID:-}"; do
    # `|| true`: wait answers the signal's status, and set -e would end the cleanup there.
    [ -n "$p" ] && kill -TERM "$p" 2>/dev/null && { wait "$p" 2>/dev/null || true; }
  done
  stop_tokend
  [ -f "$PG/data/postmaster.pid" ] && bash "$ROOT/scripts/pg.sh" stop "$PG" fast >/dev/null 2>&1
  if [ -n "${BENCH_KEEP:-}" ]; then note "kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

sql() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$DB_URL" "$@"; }

tokend() { "$BIN" --config "$CONF" "$@"; }

# private_copy SRC DIR: copy tokend binary SRC (and its libtokend when shared) into DIR.
private_copy() {
  local src=$1 dir=$2 lib
  mkdir -p "$dir"
  cp "$src" "$dir/tokend"
  # Without the LD_LIBRARY_PATH set for the benchmarked binary: ldd must name
  # the library `src` was built with (its runpath), not another binary's copy.
  lib=$(env -u LD_LIBRARY_PATH ldd "$src" 2>/dev/null | awk '$1 ~ /^libtokend/ && $3 ~ /^\// { print $3 }')
  [ -z "$lib" ] || cp "$lib" "$dir/"
}

# $1: log name. Not through the tokend() function: $! must be tokend itself.
# START_BIN (default $BIN) and START_LIBDIR (its libtokend; default $TMP/bin) choose another binary.
# START_CPUS: the CPUs tokend may run on (taskset -c), default any.
start_tokend() {
  local pin=()
  [ -z "${START_CPUS:-}" ] || pin=(taskset -c "$START_CPUS")   # taskset execs: $! is still tokend
  LD_LIBRARY_PATH="${START_LIBDIR:-$TMP/bin}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    "${pin[@]}" "${START_BIN:-$BIN}" --config "$CONF" serve >"$TMP/$1.log" 2>&1 &
  TOKEND_PID=$!
  for _ in $(seq 200); do
    kill -0 "$TOKEND_PID" 2>/dev/null || { tail -20 "$TMP/$1.log" >&2; die "tokend serve exited"; }
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  tail -20 "$TMP/$1.log" >&2
  die "tokend not ready after 20 s"
}

# "client_id:client_secret" in base64 (a Basic credential) from `key create --json` on stdin.
b64auth() { "$PY" -c 'import base64, json, sys; k = json.load(sys.stdin); print(base64.b64encode((k["client_id"] + ":" + k["client_secret"]).encode()).decode())'; }

# CPU time so far (user + system) of process $1 (default: tokend), in clock ticks.
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/${1:-$TOKEND_PID}/stat"; }
# The user-mode part of cpu_ticks (the rest is the kernel's: system calls, TCP over loopback, wakeups).
user_ticks() { awk '{ print $14 }' "/proc/${1:-$TOKEND_PID}/stat"; }

loadavg() { awk '{ print $1 }' /proc/loadavg; }

# wrk in the background against $BASE$WRK_PATH (set by the script);
# $1 label, $2 script, $3 seconds, then VAR=value env pairs. WRK_CPUS: the
# CPUs wrk may run on (taskset -c), default any.
wrk_start() {
  local label=$1 script=$2 secs=$3 pin=(); shift 3
  [ -z "${WRK_CPUS:-}" ] || pin=(taskset -c "$WRK_CPUS")
  "${pin[@]}" env "$@" BENCH_THREADS="$THREADS" timeout -s INT $((secs + 60)) \
    wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --latency -s "$script" "$BASE$WRK_PATH" \
    >"$TMP/wrk-$label.out" 2>&1 &
  WRK_PID=$!
}

wrk_wait() {   # $1 label
  local rc=0
  wait "$WRK_PID" || rc=$?
  WRK_PID=""
  grep -q '^BENCH ' "$TMP/wrk-$1.out" || { cat "$TMP/wrk-$1.out" >&2; die "wrk ($1) failed (exit $rc)"; }
  if [ "$VERBOSE" = 1 ]; then sed 's/^/    | /' "$TMP/wrk-$1.out"; fi
}

field() { sed -n 's/^BENCH .*\b'"$2"'=\([0-9.]*\).*/\1/p' "$TMP/wrk-$1.out"; }

ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }

# --------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------
bench_header_load() {
  LOAD0=$(loadavg)
  echo "  load      $LOAD0 (1-min load average before the run)"
  awk -v l="$LOAD0" 'BEGIN { exit !(l > 1.0) }' \
    && echo "  WARNING   other processes are busy on this machine: the figures below will be low and noisy"
  return 0
}

bench_setup() {   # extra config lines as arguments
  local line
  note "starting PostgreSQL in $PG"
  bash "$ROOT/scripts/pg.sh" init "$PG" >/dev/null
  bash "$ROOT/scripts/pg.sh" start "$PG" >/dev/null
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$(bash "$ROOT/scripts/pg.sh" url "$PG")" \
    -c 'CREATE DATABASE tokend_bench OWNER tokend_owner'
  # Served as the application role, migrated as the owner (README, "Database roles").
  DB_URL=$(bash "$ROOT/scripts/pg.sh" url "$PG" tokend_bench tokend)
  SUPER_URL=$(bash "$ROOT/scripts/pg.sh" url "$PG" tokend_bench)   # the cluster's superuser (run.sh's bulk insert)
  MIGRATE_URL=$(bash "$ROOT/scripts/pg.sh" url "$PG" tokend_bench tokend_owner)

  umask 077
  openssl rand -base64 32 >"$TMP/pepper"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/signing-es256.pem" 2>/dev/null
  chmod 600 "$TMP/pepper" "$TMP/signing-es256.pem"
  PORT=$(free_port)
  BASE="http://127.0.0.1:$PORT"
  CONF="$TMP/tokend.conf"
  cat >"$CONF" <<EOF
database_url = $DB_URL
migrate_database_url = $MIGRATE_URL
pepper_file = $TMP/pepper
signing_keys = $TMP/signing-es256.pem
issuer = $BASE
listen_address = 127.0.0.1
listen_port = $PORT
workers = $WORKERS
log_level = warning
EOF
  for line in "$@"; do echo "$line" >>"$CONF"; done

  tokend migrate >/dev/null
  tokend scope add bench:read --description "benchmark" >/dev/null
  tokend account create bench --name "benchmark" >/dev/null
  tokend account grant-scopes bench bench:read tokend:introspect >/dev/null
}
