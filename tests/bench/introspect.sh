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

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUN_S=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
WORKERS=${BENCH_WORKERS:-2}
DB_POOL=${BENCH_DB_POOL:-}
VERBOSE=${BENCH_VERBOSE:-0}
WRK_PATH=/oauth2/introspect

bench_check_ints RUN_S CONNS THREADS WORKERS
[ -z "$DB_POOL" ] || [[ $DB_POOL =~ ^[1-9][0-9]*$ ]] || die "BENCH_DB_POOL must be a positive integer"
bench_check_tools
bench_tmp tokend-bench-introspect

# --------------------------------------------------------------------------
# Helpers (the common ones are in lib.sh)
# --------------------------------------------------------------------------
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
  wrk_start "$1" "$HERE/introspect.lua" "$2" BENCH_AUTH="$AUTH" BENCH_TOKEN="$TOKEN"
  wrk_wait "$1"
}

# --------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------
echo "tokend introspection benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "  machine   $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "  tokend    $("$BIN" --version 2>/dev/null | head -1) ($ORIG_BIN), workers=$WORKERS${DB_POOL:+, db_pool_size=$DB_POOL}"
echo "  wrk       $(wrk --version 2>&1 | head -1 | awk '{ print $2 }'), $THREADS threads, $CONNS connections, keep-alive, ${RUN_S} s"
bench_header_load

bench_setup ${DB_POOL:+"db_pool_size = $DB_POOL"}
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
printf '  load average        %s at the end (%s before)\n' "$(loadavg)" "$LOAD0"
grep -qE 'level=error|ERROR' "$TMP/tokend.log" 2>/dev/null \
  && { echo "  tokend logged errors:"; grep -hE 'level=error|ERROR' "$TMP/tokend.log" | head -5 | sed 's/^/    /'; }
stop_tokend
exit 0
