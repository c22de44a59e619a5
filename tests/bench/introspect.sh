#!/usr/bin/env bash
# tokend introspection benchmark (issue 5, point 7). A benchmark, not a test: it prints
# figures and exits 0 unless something could not be set up or measured.
#
#   tests/bench/introspect.sh          (as root or as a user, like tests/bench/run.sh)
#
# It starts a throwaway PostgreSQL (scripts/pg.sh, in a chmod-755 temp dir; as root the
# server runs as the user tokendpg), migrates, creates one account with two keys (an
# introspector holding tokend:introspect, and a client holding bench:read), gets one
# token for the client, runs `tokend serve` (workers=2, log_level=warning) and drives
# POST /oauth2/introspect with wrk (keep-alive, client_secret_basic, body token=...):
# 2 s of warm-up, then BENCH_SECONDS measured. Every answer is checked by the Lua
# script (a 200 that is not active:true is counted as "inactive"). Each introspection
# reads the key state and the revocation list from PostgreSQL (never from a cache), so
# the figure includes one database round trip per request.
# It stops everything it started, even on failure or Ctrl-C.
#
# Environment (defaults in brackets):
#   BENCH_SECONDS [10]       length of the measured wrk run
#   BENCH_CONNECTIONS [32]   wrk connections        BENCH_THREADS [2]  wrk threads
#   BENCH_WORKERS [2]        tokend worker threads  BENCH_DB_POOL [tokend's default] db_pool_size
#   BENCH_VERBOSE [0]        1: also print wrk's own output
#   BENCH_KEEP               set: keep the temp dir (logs, wrk output)
#   TOKEND_BIN [build/tokend]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/bench"
BIN=${TOKEND_BIN:-$ROOT/build/tokend}
RUN_S=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
WORKERS=${BENCH_WORKERS:-2}
DB_POOL=${BENCH_DB_POOL:-}
VERBOSE=${BENCH_VERBOSE:-0}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
note() { printf 'bench: %s\n' "$*" >&2; }

for v in RUN_S CONNS THREADS WORKERS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
[ -z "$DB_POOL" ] || [[ $DB_POOL =~ ^[1-9][0-9]*$ ]] || die "BENCH_DB_POOL must be a positive integer"
[ -x "$BIN" ] || die "tokend binary not found: $BIN (scripts/build.sh normal, or set TOKEND_BIN)"
for t in wrk openssl curl "$PY"; do
  command -v "$t" >/dev/null 2>&1 || die "$t not found (Debian: apt-get install wrk openssl curl python3)"
done
PSQL="$PGBIN/psql"; [ -x "$PSQL" ] || PSQL=$(command -v psql) || die "psql not found (postgresql-client-15)"

# --------------------------------------------------------------------------
# Temp dir, and cleanup of everything started
# --------------------------------------------------------------------------
TMP=$(mktemp -d /tmp/tokend-bench-introspect-XXXXXX)
chmod 755 "$TMP"              # scripts/pg.sh runs PostgreSQL as tokendpg when we are root
PG="$TMP/pg"
TOKEND_PID=""; WRK_PID=""

# A private copy of the binary (and of libtokend when shared): a rebuild during the run
# changes nothing that is measured.
mkdir -p "$TMP/bin"
cp "$BIN" "$TMP/bin/tokend"
LIBTOKEND=$(ldd "$BIN" 2>/dev/null | awk '$1 ~ /^libtokend/ && $3 ~ /^\// { print $3 }')
[ -z "$LIBTOKEND" ] || cp "$LIBTOKEND" "$TMP/bin/"
ORIG_BIN=$BIN
BIN="$TMP/bin/tokend"
export LD_LIBRARY_PATH="$TMP/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

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
  [ -n "$WRK_PID" ] && kill -TERM "$WRK_PID" 2>/dev/null && wait "$WRK_PID" 2>/dev/null
  stop_tokend
  [ -f "$PG/data/postmaster.pid" ] && bash "$ROOT/scripts/pg.sh" stop "$PG" fast >/dev/null 2>&1
  if [ -n "${BENCH_KEEP:-}" ]; then note "kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tokend() { "$BIN" --config "$CONF" "$@"; }

start_tokend() {   # $1: log name
  "$BIN" --config "$CONF" serve >"$TMP/$1.log" 2>&1 &
  TOKEND_PID=$!
  for _ in $(seq 200); do
    kill -0 "$TOKEND_PID" 2>/dev/null || { tail -20 "$TMP/$1.log" >&2; die "tokend serve exited"; }
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  tail -20 "$TMP/$1.log" >&2
  die "tokend not ready after 20 s"
}

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# CPU ticks of every PostgreSQL process of our cluster (the postmaster's children).
pg_ticks() {
  local pm total=0 p
  pm=$(head -1 "$PG/data/postmaster.pid" 2>/dev/null) || { echo 0; return; }
  for p in $pm $(pgrep -P "$pm" 2>/dev/null); do
    [ -r "/proc/$p/stat" ] && total=$((total + $(cpu_ticks "$p")))
  done
  echo "$total"
}

wrk_run() {   # $1 label, $2 seconds
  env BENCH_AUTH="$AUTH" BENCH_TOKEN="$TOKEN" timeout -s INT $(($2 + 60)) \
    wrk -t"$THREADS" -c"$CONNS" -d"$2s" --latency -s "$HERE/introspect.lua" "$BASE/oauth2/introspect" \
    >"$TMP/wrk-$1.out" 2>&1 &
  WRK_PID=$!
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
echo "tokend introspection benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "  machine   $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "  tokend    $("$BIN" --version 2>/dev/null | head -1) ($ORIG_BIN), workers=$WORKERS${DB_POOL:+, db_pool_size=$DB_POOL}"
echo "  wrk       $(wrk --version 2>&1 | head -1 | awk '{ print $2 }'), $THREADS threads, $CONNS connections, keep-alive, ${RUN_S} s"
LOAD0=$(awk '{ print $1 }' /proc/loadavg)
echo "  load      $LOAD0 (1-min load average before the run)"
awk -v l="$LOAD0" 'BEGIN { exit !(l > 1.0) }' \
  && echo "  WARNING   other processes are busy on this machine: the figures below will be low and noisy"

note "starting PostgreSQL in $PG"
bash "$ROOT/scripts/pg.sh" init "$PG" >/dev/null
bash "$ROOT/scripts/pg.sh" start "$PG" >/dev/null
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$(bash "$ROOT/scripts/pg.sh" url "$PG")" -c 'CREATE DATABASE tokend_bench'
DB_URL=$(bash "$ROOT/scripts/pg.sh" url "$PG" tokend_bench)

umask 077
openssl rand -base64 32 >"$TMP/pepper"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/signing-es256.pem" 2>/dev/null
chmod 600 "$TMP/pepper" "$TMP/signing-es256.pem"
PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
CONF="$TMP/tokend.conf"
cat >"$CONF" <<EOF
database_url = $DB_URL
pepper_file = $TMP/pepper
signing_keys = $TMP/signing-es256.pem
issuer = $BASE
listen_address = 127.0.0.1
listen_port = $PORT
workers = $WORKERS
log_level = warning
EOF
[ -z "$DB_POOL" ] || echo "db_pool_size = $DB_POOL" >>"$CONF"

tokend migrate >/dev/null
tokend scope add bench:read --description "benchmark" >/dev/null
tokend account create bench --name "benchmark" >/dev/null
b64auth() { "$PY" -c 'import base64, json, sys; k = json.load(sys.stdin); print(base64.b64encode((k["client_id"] + ":" + k["client_secret"]).encode()).decode())'; }
AUTH=$(tokend key create --account bench --name "introspector" --scopes tokend:introspect --json | b64auth)
CLIENT_AUTH=$(tokend key create --account bench --name "client" --scopes bench:read --json | b64auth)

start_tokend tokend
TOKEN=$(curl -s -H "Authorization: Basic $CLIENT_AUTH" -d grant_type=client_credentials "$BASE/oauth2/token" \
        | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])') \
  || die "could not get a token"
unset CLIENT_AUTH
answer=$(curl -s -H "Authorization: Basic $AUTH" --data-urlencode "token=$TOKEN" "$BASE/oauth2/introspect")
case $answer in *'"active":true'*) ;; *) die "the first introspection did not say active:true: $answer" ;; esac

# --------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------
echo
echo "== POST /oauth2/introspect, one token, caller by client_secret_basic =="
wrk_run warm 2 >/dev/null
c0=$(cpu_ticks "$TOKEND_PID"); p0=$(pg_ticks)
wrk_run run "$RUN_S"
c1=$(cpu_ticks "$TOKEND_PID"); p1=$(pg_ticks)

req=$(field run requests); dur=$(field run duration_us); non2xx=$(field run non2xx); inactive=$(field run inactive)
RPS=$(awk -v r="$req" -v n="$non2xx" -v d="$dur" 'BEGIN { printf "%.0f", (r - n) / (d / 1e6) }')
printf '  introspections/s    %s (2xx)\n' "$RPS"
printf '  latency p50 p90 p99 p99.9 max   %s %s %s %s %s ms\n' \
  "$(ms "$(field run p50_us)")" "$(ms "$(field run p90_us)")" "$(ms "$(field run p99_us)")" \
  "$(ms "$(field run p999_us)")" "$(ms "$(field run max_us)")"
printf '  requests            %s in %s s; non-2xx %s; not active %s; socket errors: connect %s read %s write %s timeout %s\n' \
  "$req" "$(awk -v d="$dur" 'BEGIN { printf "%.2f", d / 1e6 }')" "$non2xx" "$inactive" \
  "$(field run connect_err)" "$(field run read_err)" "$(field run write_err)" "$(field run timeouts)"
awk -v t=$((c1 - c0)) -v p=$((p1 - p0)) -v hz="$CLK_TCK" -v d="$dur" -v n="$req" 'BEGIN {
  s = d / 1e6
  printf "  tokend CPU          %.2f cores busy, %.1f us per introspection\n", t / hz / s, (n > 0 ? t / hz / n * 1e6 : 0)
  printf "  PostgreSQL CPU      %.2f cores busy, %.1f us per introspection\n", p / hz / s, (n > 0 ? p / hz / n * 1e6 : 0) }'
echo
echo "== summary =="
printf '  introspection       %s requests/s, p50 %s ms, p99 %s ms, non-2xx %s, not active %s (%s connections, %s s)\n' \
  "$RPS" "$(ms "$(field run p50_us)")" "$(ms "$(field run p99_us)")" "$non2xx" "$inactive" "$CONNS" "$RUN_S"
printf '  load average        %s at the end (%s before)\n' "$(awk '{ print $1 }' /proc/loadavg)" "$LOAD0"
grep -qE 'level=error|ERROR' "$TMP/tokend.log" 2>/dev/null \
  && { echo "  tokend logged errors:"; grep -hE 'level=error|ERROR' "$TMP/tokend.log" | head -5 | sed 's/^/    /'; }
stop_tokend
exit 0
