#!/usr/bin/env bash
# tokend secret-rotation benchmark (issue 13, point 5). A benchmark, not a test: it
# prints figures and exits 0 unless something could not be set up or measured.
#
#   tests/bench/rotation.sh          (as root or as a user, like tests/bench/run.sh)
#
# The cost of a rotated key at the token endpoint: one account with a plain key and a
# key whose secret was rotated with a 1 h overlap (`tokend key rotate-secret --overlap
# 1h`), so that both its new and its previous secret work. tokend (workers=2,
# log_level=warning) is driven by wrk (keep-alive, client_secret_basic, token.lua) in
# three variants: the plain key, the rotated key with its new secret, the rotated key
# with its previous secret; each variant BENCH_SECONDS (default 5), after 2 s of
# warm-up, and the whole series BENCH_ROUNDS times (default 2), interleaved, each
# round in another order (plain new old, old new plain, new old plain, ...), so that
# drift of the machine's load hits every variant alike. The figure that matters is tokend's CPU per token (it does not
# depend on what else runs); tokens/s is printed as well. Every key is cached after
# its first request: the variants differ only in the secret check (two constant-time
# compares for every key, rotated or not).
# It stops everything it started, even on failure or Ctrl-C.
#
# Environment (defaults in brackets):
#   BENCH_SECONDS [5]        length of each measured wrk run    BENCH_ROUNDS [2]
#   BENCH_CONNECTIONS [64]   wrk connections        BENCH_THREADS [2]  wrk threads
#   BENCH_WORKERS [2]        tokend worker threads
#   BENCH_VERBOSE [0]        1: also print wrk's own output
#   BENCH_KEEP               set: keep the temp dir (logs, wrk output)
#   TOKEND_BIN [build/tokend]
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUN_S=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
WORKERS=${BENCH_WORKERS:-2}
VERBOSE=${BENCH_VERBOSE:-0}
WRK_PATH=/oauth2/token

bench_check_ints RUN_S ROUNDS CONNS THREADS WORKERS
bench_check_tools
bench_tmp tokend-bench-rotation

echo "tokend secret-rotation benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "  machine   $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "  tokend    $("$BIN" --version 2>/dev/null | head -1) ($ORIG_BIN), workers=$WORKERS"
echo "  wrk       $(wrk --version 2>&1 | head -1 | awk '{ print $2 }'), $THREADS threads, $CONNS connections, keep-alive, ${RUN_S} s per run, $ROUNDS rounds"
bench_header_load

bench_setup
PLAIN=$(tokend key create --account bench --name "plain" --scopes bench:read --json | b64auth)
ROT_JSON=$(tokend key create --account bench --name "rotated" --scopes bench:read --json)
ROT_ID=$(printf '%s' "$ROT_JSON" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["client_id"])')
OLD=$(printf '%s' "$ROT_JSON" | b64auth)
unset ROT_JSON
NEW=$(tokend key rotate-secret "$ROT_ID" --overlap 1h --json | b64auth)

start_tokend tokend
for v in PLAIN NEW OLD; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Basic ${!v}" \
           -d grant_type=client_credentials "$BASE/oauth2/token")
  [ "$code" = 200 ] || die "the first token request of $v got HTTP $code"
done

echo
echo "== POST /oauth2/token: plain key, rotated key (new secret), rotated key (previous secret) =="
declare -A SUM_US SUM_TPS
ORDERS=("PLAIN NEW OLD" "OLD NEW PLAIN" "NEW OLD PLAIN" "PLAIN OLD NEW" "OLD PLAIN NEW" "NEW PLAIN OLD")
for r in $(seq "$ROUNDS"); do
  for v in ${ORDERS[$(( (r - 1) % 6 ))]}; do
    label="$v-$r"
    wrk_start "warm-$label" "$HERE/token.lua" 2 BENCH_AUTH="${!v}"; wrk_wait "warm-$label" >/dev/null
    c0=$(cpu_ticks)
    wrk_start "$label" "$HERE/token.lua" "$RUN_S" BENCH_AUTH="${!v}"; wrk_wait "$label" >/dev/null
    c1=$(cpu_ticks)
    req=$(field "$label" requests); dur=$(field "$label" duration_us); non2xx=$(field "$label" non2xx)
    [ "$non2xx" = 0 ] || die "$label: $non2xx non-2xx answers"
    us=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.1f", (n > 0 ? t / hz / n * 1e6 : 0) }')
    tps=$(awk -v r="$req" -v d="$dur" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
    printf '  round %s %-6s %7s tokens/s   %6s us of tokend CPU per token\n' "$r" "$v" "$tps" "$us"
    SUM_US[$v]=$(awk -v a="${SUM_US[$v]:-0}" -v b="$us" 'BEGIN { print a + b }')
    SUM_TPS[$v]=$(awk -v a="${SUM_TPS[$v]:-0}" -v b="$tps" 'BEGIN { print a + b }')
  done
done

echo
echo "== summary (mean of $ROUNDS rounds) =="
base=$(awk -v s="${SUM_US[PLAIN]}" -v n="$ROUNDS" 'BEGIN { print s / n }')
for v in PLAIN NEW OLD; do
  awk -v s="${SUM_US[$v]}" -v t="${SUM_TPS[$v]}" -v n="$ROUNDS" -v b="$base" -v v="$v" 'BEGIN {
    m = s / n; printf "  %-6s %7.0f tokens/s   %6.1f us CPU per token   %+5.1f%% against plain\n", v, t / n, m, (b > 0 ? (m - b) / b * 100 : 0) }'
done
printf '  load average        %s at the end (%s before)\n' "$(loadavg)" "$LOAD0"
stop_tokend
exit 0
