#!/usr/bin/env bash
# tokend token-endpoint benchmark. A benchmark, not a test: it prints figures and
# exits 0 unless something could not be set up or measured (it does not judge them).
#
#   tests/bench/run.sh            (as root or as a user; see tests/bench/README.md)
#
# Everything runs on this machine over loopback and is bounded in time. It starts a
# throwaway PostgreSQL (scripts/pg.sh, in a temp dir; as root the server runs as the
# user tokendpg), migrates, provisions keys, runs `tokend serve` (workers=2,
# log_level=warning) and drives POST /oauth2/token with wrk (keep-alive):
#   run 1  one key (client_secret_basic), after a short warm-up
#   run 1f the transport floor (BENCH_FLOOR): build/floor (tests/bench/floor.c), a bare
#          server answering as many bytes as tokend's token response and doing nothing
#          else, under run 1's load: what the kernel costs any server here per request
#   run 1p (BENCH_PIN, on 2 cores or more) the one key again, tokend with one worker on one CPU
#          and wrk on the others (taskset): tokend's CPU per token without the load generator
#          scheduled on its core, and tokens/s against one core's signature rate
#   run 1b (BENCH_MODEL=1) the one key against a key made from a role, bound to a member and
#          carrying custom claims (issue 13), interleaved twice each: CPU per token of both
#   run 1o open loop (tests/bench/openloop.c, built as build/openloop): the one key at a
#          fixed rate of half run 1's peak, latency from each request's due time (no
#          coordinated omission): p50 p99 p99.9 max
#   run 1a the one key signed with EdDSA, then RS256 (BENCH_ALGS): CPU per token of each
#   run 2  BENCH_KEYS keys (default 100,000; 1,000,000 works) inserted with one COPY,
#          first loaded into the cache by one sequential pass whose requests each need a
#          database lookup and are answered without a signature (scope=bench:none: 400
#          invalid_scope after the key is authenticated): the cold-cache lookups/s; then
#          requested at random, all cached (CPU per token against run 1's, and RSS)
# plus `openssl speed ecdsap256 ed25519 rsa2048` on one core and on 2 (-multi 2) for the ratio
# tokens/s / signatures/s, tokend's RSS, and (if perf works) the top symbols.
# It stops everything it started, even on failure or Ctrl-C.
#
# Environment (defaults in brackets):
#   BENCH_SECONDS [15]       length of each measured wrk run
#   BENCH_CONNECTIONS [64]   wrk connections        BENCH_THREADS [2]  wrk threads
#   BENCH_WORKERS [2]        tokend worker threads
#   BENCH_KEYS [100000]      keys for run 2         BENCH_ACCOUNTS [1000, or BENCH_KEYS/100 if more]
#                            accounts they are spread over
#   BENCH_WARM_MAX [120, or BENCH_KEYS/4000 if more]  upper bound (s) of run 2's cache-loading pass
#   BENCH_MODEL [1]          0: no run 1b          BENCH_RUN2 [1]  0: skip run 2
#   BENCH_PERF [1]           0: no perf profile     BENCH_VERBOSE [0] 1: also print wrk's own output
#   BENCH_OPENLOOP [1]       0: no run 1o           BENCH_ALGS ["EdDSA RS256"]  "": no run 1a
#   BENCH_PERF_WARM [0]      1: perf record -g of tokend and its PostgreSQL backends for 3 s of
#                            run 2's cache-loading pass (from 10% of the keys cached: the pass's
#                            lookups/s then pays perf's cost), both printed by symbol
#   BENCH_STRACE [0]         1: system calls per token request (strace -c -f, 3 s under wrk)
#   BENCH_BULK [1 above 100,000 keys, else 0]  run 2's keys after the first 1,000 inserted
#                            in bulk with the row triggers off (checked equal to trigger-made rows)
#   BENCH_RECENT_USE [1]     run 2's keys marked used a minute ago (the steady state: no first-use
#                            write per key); 0: never used (each key's first use written at once)
#   BENCH_RUN2_ROUNDS [2]    run 2's measure: one key, then random keys, this many times (same tokend)
#   BENCH_RUN2_MATCHED [1]   0: no rate-matched pair (openloop: one key and random keys at one rate)
#   BENCH_RUN2_RATE          that rate (default 80% of the random-key closed loop's tokens/s)
#   BENCH_COMPARE            another tokend binary: run 1c, the one-key run 1 of this binary (A)
#                            and that one (B) interleaved, A B A B: each run's CPU per token and
#                            tokens/s, and the means (same machine, one sitting)
#   BENCH_COMPARE_ROUNDS [2] rounds of run 1c     BENCH_COMPARE_OPENLOOP [BENCH_OPENLOOP]
#                            1: each run 1c run also does the open loop at half of run 1's rate
#   OPENLOOP_BIN [build/openloop]   MINTBENCH_BIN [build/mintbench] (run 0: the mint alone, by algorithm)
#   BENCH_PAUSES [10]        seconds of "host pauses" before the runs (0: none): build/pauseprobe, a
#                            spinning thread per CPU on the idle machine, counts the gaps in which it
#                            did not run (in a VM: the host not running the virtual CPU), the floor
#                            under any latency percentile here   PAUSEPROBE_BIN [build/pauseprobe]
#   BENCH_PIN [1 on 2+ cores] 0: no run 1p and no run 1s
#   BENCH_FLOOR [1]          0: no run 1f (the transport floor: build/floor under run 1's load)
#   BENCH_KEEP               set: keep the temp dir (logs, wrk output, perf.data)
#   BENCH_MEMDUMP            1: after run 2's measure, where tokend's memory is: mem-run2.smaps
#                            (its mappings) and mem-run2.malloc.xml (glibc malloc_info through
#                            gdb: each heap's bytes in use and free) in the temp dir (with BENCH_KEEP)
#   BENCH_PERF_CG [-g]       perf record call-graph option (e.g. "--call-graph dwarf,16384": callers through libc)
#   TOKEND_BIN [build/tokend]
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUN_S=${BENCH_SECONDS:-15}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
WORKERS=${BENCH_WORKERS:-2}
NKEYS=${BENCH_KEYS:-100000}
# A million keys over 10,000 accounts: the COPY's insert trigger counts each
# account's active keys per row, so keys per account bound its time.
NACCOUNTS=${BENCH_ACCOUNTS:-$(( NKEYS > 100000 ? NKEYS / 100 : 1000 ))}
WARM_MAX=${BENCH_WARM_MAX:-$(( NKEYS > 480000 ? NKEYS / 4000 : 120 ))}
# Every key fits: the cache bounds each of its 64 shards at key_cache_size / 64.
CACHE_SIZE=$(( NKEYS * 5 / 4 > 1000000 ? NKEYS * 5 / 4 : 1000000 ))
PERF=${BENCH_PERF:-1}
VERBOSE=${BENCH_VERBOSE:-0}
ALGS=${BENCH_ALGS-EdDSA RS256}
OPENLOOP_BIN=${OPENLOOP_BIN:-$ROOT/build/openloop}
MINTBENCH_BIN=${MINTBENCH_BIN:-$ROOT/build/mintbench}
FLOOR_BIN=${FLOOR_BIN:-$ROOT/build/floor}
PAUSEPROBE_BIN=${PAUSEPROBE_BIN:-$ROOT/build/pauseprobe}
PAUSE_S=${BENCH_PAUSES:-10}
PAUSES=""
COMPARE=${BENCH_COMPARE:-}
RECENT=${BENCH_RECENT_USE:-1}
BULK=${BENCH_BULK:-$(( NKEYS > 100000 ? 1 : 0 ))}
RUN2_ROUNDS=${BENCH_RUN2_ROUNDS:-2}
CPU2=""
COMPARE_ROUNDS=${BENCH_COMPARE_ROUNDS:-2}
COMPARE_OL=${BENCH_COMPARE_OPENLOOP:-${BENCH_OPENLOOP:-1}}
WRK_PATH=/oauth2/token

bench_check_ints RUN_S CONNS THREADS WORKERS NKEYS NACCOUNTS WARM_MAX COMPARE_ROUNDS RUN2_ROUNDS PAUSE_S
[ -z "$COMPARE" ] || [ -x "$COMPARE" ] || die "BENCH_COMPARE: not an executable tokend binary: $COMPARE"
[ "$NKEYS" -ge "$NACCOUNTS" ] || NACCOUNTS=$NKEYS
# The schema caps key_limit at 100000 per account.
PER_ACCOUNT=$(( (NKEYS + NACCOUNTS - 1) / NACCOUNTS ))
[ "$PER_ACCOUNT" -le 100000 ] || die "BENCH_KEYS / BENCH_ACCOUNTS must be <= 100000"
bench_check_tools
bench_tmp tokend-bench

# --------------------------------------------------------------------------
# Helpers (the common ones are in lib.sh)
# --------------------------------------------------------------------------
metric() {   # value of an unlabelled metric (awk reads to the end: an early exit can fail curl, 23)
  curl -s "$BASE/metrics" | awk -v n="$1" '$1 == n && !f { print $2; f = 1 }'
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$TOKEND_PID/status"; }
# Each worker thread (tokend-w<i>) and the CPUs it may run on, as the kernel has them.
worker_placement() {
  local t out=""
  for t in /proc/"$TOKEND_PID"/task/*; do
    case "$(cat "$t/comm" 2>/dev/null)" in
      tokend-w*) out="$out${out:+, }$(cat "$t/comm") on CPU $(awk '/^Cpus_allowed_list:/ { print $2 }' "$t/status")" ;;
    esac
  done
  echo "${out:-unknown}"
}
# BENCH_MEMDUMP=1: where tokend's memory is, after run 2's measure: $1.smaps (the
# kernel's mappings), $1.malloc.xml (glibc's malloc_info: each arena's in-use and
# free bytes; gdb attaches for a moment). With BENCH_KEEP to read them afterwards.
mem_dump() {
  cp "/proc/$TOKEND_PID/smaps" "$1.smaps" 2>/dev/null || true
  command -v gdb >/dev/null 2>&1 || return 0
  gdb -p "$TOKEND_PID" -batch -nx \
    -ex "set \$f = (void *)fopen(\"$1.malloc.xml\", \"w\")" \
    -ex 'call (int)malloc_info(0, $f)' -ex 'call (int)fclose($f)' >"$1.gdb.log" 2>&1 || true
  printf '  memory dump         %s.smaps, %s.malloc.xml\n' "$1" "$1"
}

# Involuntary context switches of tokend's workers so far (each a preemption: on this
# machine, mostly by a wrk thread its answer woke).
worker_invol() {
  local t n=0
  for t in /proc/"$TOKEND_PID"/task/*; do
    case "$(cat "$t/comm" 2>/dev/null)" in
      tokend-w*) n=$((n + $(awk '/^nonvoluntary_ctxt_switches:/ { print $2 }' "$t/status"))) ;;
    esac
  done
  echo "$n"
}

# Print the figures of one wrk run; sets TPS.
# $1 label, $2 tokens issued by tokend meanwhile, $3 tokend CPU ticks meanwhile.
report() {
  local l=$1 issued=$2 ticks=$3 req dur non2xx
  req=$(field "$l" requests); dur=$(field "$l" duration_us); non2xx=$(field "$l" non2xx)
  TPS=$(awk -v r="$req" -v n="$non2xx" -v d="$dur" 'BEGIN { printf "%.0f", (r - n) / (d / 1e6) }')
  printf '  tokens/s            %s\n' "$TPS"
  printf '  latency p50 p90 p99 p99.9 max   %s %s %s %s %s ms\n' \
    "$(ms "$(field "$l" p50_us)")" "$(ms "$(field "$l" p90_us)")" "$(ms "$(field "$l" p99_us)")" \
    "$(ms "$(field "$l" p999_us)")" "$(ms "$(field "$l" max_us)")"
  printf '  requests            %s in %s s; non-2xx %s; socket errors: connect %s read %s write %s timeout %s\n' \
    "$req" "$(awk -v d="$dur" 'BEGIN { printf "%.2f", d / 1e6 }')" "$non2xx" \
    "$(field "$l" connect_err)" "$(field "$l" read_err)" "$(field "$l" write_err)" "$(field "$l" timeouts)"
  printf '  tokens issued       %s (tokend_tokens_issued_total delta)\n' "$issued"
  # CPU per token does not depend on what else runs on the machine, unlike tokens/s.
  awk -v t="$ticks" -v hz="$CLK_TCK" -v d="$dur" -v n="$issued" 'BEGIN {
    printf "  tokend CPU          %.2f cores busy, %.1f us of CPU per token\n", t / hz / (d / 1e6), (n > 0 ? t / hz / n * 1e6 : 0) }'
}

# Best effort: profile tokend under the load of $1 (script) for 5 s, print the top 25.
profile() {
  local label=$1 script=$2; shift 2
  [ "$PERF" = 1 ] && command -v perf >/dev/null 2>&1 || return 0
  wrk_start "perf-$label" "$script" 8 "$@"
  # wrk formats every request first (a million keys: seconds): wait for tokens to flow.
  local t0 t
  t0=$(metric tokend_tokens_issued_total)
  for _ in $(seq 300); do
    sleep 0.1; t=$(metric tokend_tokens_issued_total); [ "${t:-0}" -gt "${t0:-0}" ] && break
  done
  sleep 1.5
  if perf record -F 999 ${BENCH_PERF_CG:--g} -p "$TOKEND_PID" -o "$TMP/perf-$label.data" -- sleep 5 \
       >"$TMP/perf-$label.log" 2>&1; then
    wrk_wait "perf-$label" >/dev/null
    echo "  perf: tokend's CPU time by library (5 s under load; wrk and perf share the 2 cores)"
    perf report -i "$TMP/perf-$label.data" --stdio --no-children -g none --sort dso \
      >"$TMP/perf-$label-dso.txt" 2>/dev/null || true
    grep -E '^ +[0-9.]+%' "$TMP/perf-$label-dso.txt" | head -8 | sed 's/^ */    /' || true
    echo "  perf: top 25 symbols (self time)"
    perf report -i "$TMP/perf-$label.data" --stdio --no-children -g none --sort dso,sym \
      >"$TMP/perf-$label.txt" 2>/dev/null || true
    grep -E '^ +[0-9.]+%' "$TMP/perf-$label.txt" | head -25 | sed 's/^ */    /' || true
  else
    wait "$WRK_PID" 2>/dev/null || true; WRK_PID=""
  fi
}

# Where the open loop's tail is (from openloop -T: due_us latency_us conn per request):
# slow requests (> 2 ms) grouped into bursts (slow requests due within 5 ms of each other),
# how many connections a burst spans, and the bursts' phase in the 5 s last-used flush period.
tail_shape() {
  sort -n "$1" | awk '
    $2 > 2000 { slow++
      if (!have || $1 - last > 5000) { nb++; bstart[nb] = $1; have = 1 }
      last = $1; bn[nb]++; if ($2 > bmax[nb]) bmax[nb] = $2; key = nb SUBSEP $3
      if (!(key in seen)) { seen[key] = 1; bconns[nb]++ } }
    { n++ }
    END {
      printf "  tail shape          %d of %d requests over 2 ms (%.2f%%) in %d bursts", slow, n, (n ? slow * 100 / n : 0), nb
      if (nb == 0) { print ""; exit }
      big = 0; for (b = 1; b <= nb; b++) { if (bn[b] > bn[big]) big = b; nconn += bconns[b]; span += bn[b] }
      printf "; biggest: %d requests over %d connections, worst %.1f ms; mean %.1f connections a burst\n", bn[big], bconns[big], bmax[big] / 1000, nconn / nb
      printf "  burst phase in 5 s  "
      for (b = 1; b <= nb; b++) ph[int((bstart[b] % 5000000) / 500000)]++
      for (i = 0; i < 10; i++) printf "%d ", ph[i]
      print "(bursts per 0.5 s slice of the flush period: flat = not the flush timer)"
    }'
}

# Let the last-used marks of the run just ended be written (the worker's flush timer,
# last_used_flush_interval = 5 s, and the statement's time): its CPU is then counted in
# its own window, not in the next run's.
SETTLE_S=7
settle() { sleep "$SETTLE_S"; }

# While wrk runs, append "seconds tokens ticks" to $1 every 0.2 s: run 2's
# rate is taken over the samples of wrk's own clock (its last RUN_S seconds).
load_sampler() {
  while kill -0 "$WRK_PID" 2>/dev/null; do
    echo "$(date +%s.%N) $(metric tokend_tokens_issued_total) $(cpu_ticks)" >>"$1"
    sleep 0.2
  done
}

# Print run 2's random-key figures; sets TPS. $1 wrk label, $2 and $3 the load
# window's start and end ("seconds tokens ticks"), $4 tokens and $5 ticks of
# the CPU window (the load and the settle after it: the CPU per token).
report_run2() {
  local l=$1 req dur non2xx
  req=$(field "$l" requests); dur=$(field "$l" duration_us); non2xx=$(field "$l" non2xx)
  read -r ta na ca <<<"$2"; read -r tb nb cb <<<"$3"
  TPS=$(awk -v a="$ta" -v b="$tb" -v n=$((nb - na)) 'BEGIN { printf "%.0f", (b > a ? n / (b - a) : 0) }')
  printf '  tokens/s            %s (tokend'"'"'s count over wrk'"'"'s last %.1f s: both threads sending)\n' \
    "$TPS" "$(awk -v a="$ta" -v b="$tb" 'BEGIN { print b - a }')"
  printf '  latency p50 p90 p99 p99.9 max   %s %s %s %s %s ms\n' \
    "$(ms "$(field "$l" p50_us)")" "$(ms "$(field "$l" p90_us)")" "$(ms "$(field "$l" p99_us)")" \
    "$(ms "$(field "$l" p999_us)")" "$(ms "$(field "$l" max_us)")"
  printf '  requests            %s (wrk); non-2xx %s; socket errors: connect %s read %s write %s timeout %s\n' \
    "$req" "$non2xx" "$(field "$l" connect_err)" "$(field "$l" read_err)" "$(field "$l" write_err)" "$(field "$l" timeouts)"
  awk -v t=$((cb - ca)) -v hz="$CLK_TCK" -v a="$ta" -v b="$tb" -v n="$4" -v tt="$5" 'BEGIN {
    printf "  tokend CPU          %.2f cores busy under the load; %.1f us of CPU per token (%d tokens, CPU until the last-used batch is written)\n",
           (b > a ? t / hz / (b - a) : 0), (n > 0 ? tt / hz / n * 1e6 : 0), n }'
}

# Every issue-16 target, one labelled line each (printed last; a part not run says so).
issue16_targets() {
  echo
  echo "== issue 16 targets (benchmark figures, not gates) =="
  awk -v c="$CPU1" -v s="$SIGN1" 'BEGIN {
    printf "  one key CPU/token   %.1f us (target <= 40); one ES256 signature %.1f us: %.2f of one core'"'"'s signature rate (target >= 0.55)\n",
           c, (s > 0 ? 1e6 / s : 0), (c > 0 && s > 0 ? 1e6 / s / c : 0) }'
  printf '  one key, split      user %s us + system %s us; the mint alone %s us (run 0)\n' \
    "$CPU1_USER" "$CPU1_SYS" "${MINT_US[ES256]:-n/a}"
  if [ -n "$CPU1FS" ]; then
    awk -v c="$CPU1" -v f="$CPU1F" -v g="$CPU1FS" -v s="$SIGN1" 'BEGIN {
      sig = (s > 0 ? 1e6 / s : 0)
      printf "  transport floor     %.1f us per request bare; %.1f us with one signature'"'"'s CPU per request (run 1f): %.2f of the signature rate, the best any server could reach here\n",
             f, g, (g > 0 ? sig / g : 0)
      printf "  tokend beyond it    %.1f us per token (run 1 less the floor with one signature)\n", c - g }'
  fi
  if [ -n "$CPU1P" ]; then
    awk -v c="$CPU1P" -v s="$SIGN1" -v t="$TPS1P" -v u="$CPU1P_USER" -v y="$CPU1P_SYS" -v n="$NON2XX1P" 'BEGIN {
      printf "  one key, pinned     %.1f us/token (user %s + system %s; target <= 40), %.0f tokens/s on one core: %.2f of its signature rate (target >= 0.55); non-2xx %s\n",
             c, u, y, t, (s > 0 ? t / s : 0), n }'
  else
    echo "  one key, pinned     not run (BENCH_PIN=0, or one CPU)"
  fi
  if [ -n "${CPU1S:-}" ]; then
    awk -v c="$CPU1S" -v s="$SIGN1" -v t="$TPS1S" -v u="$CPU1S_USER" -v y="$CPU1S_SYS" -v n="$NON2XX1S" 'BEGIN {
      printf "  one key, spinning   %.1f us/token (user %s + system %s; target <= 40), %.0f tokens/s on one core: %.2f of its signature rate (target >= 0.55); non-2xx %s\n",
             c, u, y, t, (s > 0 ? t / s : 0), n }'
  fi
  printf '  non-2xx             %s in run 1 (target 0)\n' "$NON2XX1"
  if [ -n "$CPU2" ]; then
    NK=$(echo "$NKEYS" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')
    awk -v nk="$NK" -v x="$CPU2" -v y="$CPU1R" -v r="$RSS2" -v big=$(( NKEYS >= 1000000 )) -v u="$RECENT" 'BEGIN {
      printf "  %-19s %s us/token vs one key %s us on the same tokend, interleaved: %+.1f%% (target within 10%%)%s\n",
             nk " keys cached", x, y, (y > 0 ? (x - y) / y * 100 : 0), (u == 1 ? "" : "; keys never used before: first-use writes included")
      printf "  %-19s %.0f MB (target <= %d MB)\n", nk " keys RSS", r / 1024, (big ? 300 : 60) }'
    [ -z "$CPU2M" ] || awk -v nk="$NK" -v x="$CPU2M" -v y="$CPU1M" -v m="$MRATE" 'BEGIN {
      printf "  %-19s %s us/token vs one key %s us, both at %s requests/s (openloop), interleaved: %+.1f%% (target within 10%%)\n",
             nk " keys, one rate", x, y, m, (y > 0 ? (x - y) / y * 100 : 0) }'
    printf '  cold cache          %s lookups/s (target >= 15,000)\n' "$LOOKUPS"
  else
    echo "  random keys, RSS, cold cache: not run (BENCH_RUN2=0)"
  fi
  if [ -n "$OL_P99" ]; then
    printf '  open-loop p99       %s ms at %s requests/s, half the peak (target <= 2 ms); late %s, non-2xx %s\n' \
      "$OL_P99" "$OL_RATE" "$OL_LATE" "$OL_NON2XX"
    [ -z "$PAUSES" ] || printf '                      host pauses before the runs, idle: %s\n' "$PAUSES"
  else
    echo "  open-loop p99       not run (BENCH_OPENLOOP=0)"
  fi
  if [ -n "$ALGS" ]; then
    for alg in $ALGS; do
      case $alg in EdDSA) sps=$SIGN_ED ;; RS256) sps=$SIGN_RSA ;; esac
      awk -v a="$alg" -v c="${ALG_CPU[$alg]:-0}" -v e="$CPU1" -v s="$sps" -v m="${MINT_US[$alg]:-n/a}" 'BEGIN {
        printf "  %-6s CPU/token    %.1f us (ES256 %.1f us); one signature %.1f us (openssl speed); the mint alone %s us%s\n", a, c, e, (s > 0 ? 1e6 / s : 0), m, (a == "RS256" ? " (RSA 3072)" : "") }'
    done
  else
    echo "  EdDSA, RS256        not run (BENCH_ALGS empty)"
  fi
  [ -z "$COMPARE" ] || printf '  compare (run 1c)    A %s us/token, B %s us/token (means of %s interleaved runs each)\n' \
    "$(mean "${C_CPU[A]}")" "$(mean "${C_CPU[B]}")" "$COMPARE_ROUNDS"
  printf '  load average        %s at the end (%s before)\n' "$(loadavg)" "$LOAD0"
}

sign_per_s() { openssl speed -seconds 5 "$@" ecdsap256 2>/dev/null | awk '/ecdsa \(nistp256\)/ { v = $(NF-1) } END { print v }'; }
# One core's signatures/s with Ed25519 and RSA 2048 (openssl speed, 3 s).
sign_ed_per_s() { openssl speed -seconds 3 ed25519 2>/dev/null | awk '/Ed25519/ { v = $(NF-1) } END { print v }'; }
sign_rsa_per_s() { openssl speed -seconds 3 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ { v = $(NF-1) } END { print v }'; }

# Mean of the numbers in $1 (space-separated).
mean() { echo "$1" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.2f", (NF ? s / NF : 0) }'; }

# CPU per token (us) of the last measured window: $1 tokens, $2 ticks.
us_per_token() { awk -v t="$2" -v hz="$CLK_TCK" -v n="$1" 'BEGIN { printf "%.1f", (n > 0 ? t / hz / n * 1e6 : 0) }'; }

# System calls of tokend per token under wrk load (3 s of strace -c -f).
strace_calls() {
  command -v strace >/dev/null 2>&1 || { echo "  (strace not installed)"; return 0; }
  wrk_start strace "$HERE/token.lua" 6 BENCH_AUTH="$AUTH"
  sleep 1.5
  local before after
  before=$(metric tokend_tokens_issued_total)
  timeout -s INT 3 strace -c -f -p "$TOKEND_PID" -o "$TMP/strace.txt" >/dev/null 2>&1 || true
  after=$(metric tokend_tokens_issued_total)
  wrk_wait strace >/dev/null
  echo "  system calls per token (strace -c -f for 3 s; strace slows tokend, the counts stay)"
  awk -v n=$((after - before)) '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
      printf "    %-16s %6.2f\n", $NF, $4 / (n > 0 ? n : 1) }' "$TMP/strace.txt" | sort -k2 -nr | head -12
}

# --------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------
echo "tokend benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "  machine   $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "  tokend    $("$BIN" --version 2>/dev/null | head -1) ($ORIG_BIN), workers=$WORKERS"
echo "  wrk       $(wrk --version 2>&1 | head -1 | awk '{ print $2 }'), $THREADS threads, $CONNS connections, keep-alive, ${RUN_S} s per run"
echo "  openssl   $(openssl version)"
bench_header_load
# Host pauses, on the idle machine (before PostgreSQL and tokend start): per second
# and CPU, gaps of >= 1 and 2 ms in a spinning thread's run that it did not spend on
# this kernel's run queue (the host's: the virtual CPU not run), the longest, and the
# share of time a request arriving at a random instant would wait over 2 ms for its
# CPU (sum of (gap - 2 ms) over the time): a floor under the open loop's tail. The
# gaps the guest gave to its own tasks are counted apart.
if [ "$PAUSE_S" -gt 0 ] && [ -x "$PAUSEPROBE_BIN" ]; then
  "$PAUSEPROBE_BIN" "$PAUSE_S" $(seq 0 $(( $(nproc) - 1 ))) >"$TMP/pauses.out" 2>&1 || true
  PAUSES=$(awk '/^PAUSES cpu=all / {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      if (v["seconds"] > 0)
        printf "the host %.2f/s of >= 1 ms, %.2f/s >= 2 ms per CPU, longest %.1f ms, over 2 ms at a random instant %.2f%% of the time; the guest (other tasks) %.2f/s >= 1 ms, longest of all %.1f ms",
               v["host_ge1ms"] / v["seconds"], v["host_ge2ms"] / v["seconds"], v["host_max_us"] / 1000, v["host_over2ms_pct"],
               (v["ge1ms"] - v["host_ge1ms"]) / v["seconds"], v["max_us"] / 1000 }' "$TMP/pauses.out")
  echo "  host pauses  ${PAUSES:-not measured (pauseprobe failed: $(head -1 "$TMP/pauses.out"))} (a spinning thread per CPU, idle machine, ${PAUSE_S} s)"
else
  echo "  host pauses  not measured (BENCH_PAUSES=0, or no $PAUSEPROBE_BIN)"
fi

bench_setup "key_cache_size = $CACHE_SIZE"
KEY_JSON=$(tokend key create --account bench --name "bench key" --scopes bench:read --json)
AUTH=$(printf '%s' "$KEY_JSON" | b64auth)
unset KEY_JSON

# --------------------------------------------------------------------------
# Run 1: one key
# --------------------------------------------------------------------------
start_tokend tokend-run1
code=$(curl -s -o "$TMP/first.json" -w '%{http_code}' -H "Authorization: Basic $AUTH" \
         -d grant_type=client_credentials "$BASE/oauth2/token")
[ "$code" = 200 ] && grep -q '"access_token"' "$TMP/first.json" || die "first token request got HTTP $code"

echo
echo "== run 1: one key, POST /oauth2/token (client_secret_basic) =="
wrk_start warm1 "$HERE/token.lua" 2 BENCH_AUTH="$AUTH"; wrk_wait warm1 >/dev/null
before=$(metric tokend_tokens_issued_total); c0=$(cpu_ticks); u0=$(user_ticks)
i0=$(worker_invol); g0=$(metric tokend_send_uring_calls_total); b0=$(metric tokend_send_batches_total)
wrk_start run1 "$HERE/token.lua" "$RUN_S" BENCH_AUTH="$AUTH"; wrk_wait run1
after=$(metric tokend_tokens_issued_total); c1=$(cpu_ticks); u1=$(user_ticks)
i1=$(worker_invol); g1=$(metric tokend_send_uring_calls_total); b1=$(metric tokend_send_batches_total)
report run1 $((after - before)) $((c1 - c0))
CPU1_USER=$(us_per_token $((after - before)) $((u1 - u0)))
CPU1_SYS=$(us_per_token $((after - before)) $((c1 - c0 - (u1 - u0))))
printf '  tokend CPU split    user %s us + system %s us per token (system: system calls, TCP over loopback, wakeups)\n' \
  "$CPU1_USER" "$CPU1_SYS"
awk -v i=$((i1 - i0)) -v n=$((after - before)) -v g=$((${g1:-0} - ${g0:-0})) -v b=$((${b1:-0} - ${b0:-0})) 'BEGIN {
  printf "  workers preempted   %.3f times per token (involuntary context switches); %d groups of answers, %d of them in one io_uring_enter each (send_uring)\n",
    (n > 0 ? i / n : 0), b, g }'
TPS1=$TPS
printf '  tokend RSS          %s kB\n' "$(rss_kb)"
printf '  workers placed      %s\n' "$(worker_placement)"
profile run1 "$HERE/token.lua" BENCH_AUTH="$AUTH"
CPU1=$(us_per_token $((after - before)) $((c1 - c0)))
NON2XX1=$(field run1 non2xx)
[ "${BENCH_STRACE:-0}" = 1 ] && strace_calls

# --------------------------------------------------------------------------
# Run 1f: the transport floor. build/floor (tests/bench/floor.c) answers every
# request with as many bytes as tokend's token response, with tokend's worker
# shape (threads, SO_REUSEPORT, epoll, one recv and one send per request,
# pinned as worker_cpus = auto, answers sent together as send_batch does, a group
# in one io_uring_enter as send_uring does: -U),
# under run 1's wrk load: once bare, once spending one ES256 signature's CPU
# (openssl speed) on each request. The second is a server that signs and does
# nothing else: its CPU per request is the least any server could spend per
# token here, and its share of it the signature's best ratio on this machine.
# --------------------------------------------------------------------------
CPU1F=""; CPU1FS=""
# $1 tag, $2 what it is, then floor's options; prints a line, sets FCPU.
floor_run() {
  local label=$1 what=$2; shift 2
  local port c0 c1 u0 u1 n
  port=$(free_port)
  "$FLOOR_BIN" -p "$port" -w "$WORKERS" -H "$FHEAD" -B "$FBODY" -D 8 -U "$@" >"$TMP/floor-$label.out" 2>&1 &
  FLOOR_PID=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  local saved=$BASE; BASE=http://127.0.0.1:$port
  wrk_start "warm1f-$label" "$HERE/token.lua" 2 BENCH_AUTH="$AUTH"; wrk_wait "warm1f-$label" >/dev/null
  c0=$(cpu_ticks "$FLOOR_PID"); u0=$(user_ticks "$FLOOR_PID")
  wrk_start "run1f-$label" "$HERE/token.lua" "$RUN_S" BENCH_AUTH="$AUTH"; wrk_wait "run1f-$label"
  c1=$(cpu_ticks "$FLOOR_PID"); u1=$(user_ticks "$FLOOR_PID")
  BASE=$saved
  kill -TERM "$FLOOR_PID"; wait "$FLOOR_PID" 2>/dev/null || true; FLOOR_PID=""
  n=$(field "run1f-$label" requests)
  FCPU=$(us_per_token "$n" $((c1 - c0)))
  printf '  %-19s %s us of CPU per request (user %s + system %s), %s requests/s\n' "$what" "$FCPU" \
    "$(us_per_token "$n" $((u1 - u0)))" "$(us_per_token "$n" $((c1 - c0 - (u1 - u0))))" \
    "$(awk -v r="$n" -v d="$(field "run1f-$label" duration_us)" 'BEGIN { printf "%.0f", r / (d / 1e6) }')"
}
if [ "${BENCH_FLOOR:-1}" = 1 ] && [ -x "$FLOOR_BIN" ]; then
  echo
  echo "== run 1f: the transport floor: build/floor, $WORKERS workers, tokend's answer size, run 1's load =="
  read -r FHEAD FBODY < <(curl -s -o /dev/null -w '%{size_header} %{size_download}\n' \
    -H "Authorization: Basic $AUTH" -d grant_type=client_credentials "$BASE/oauth2/token")
  SIGN1=$(sign_per_s)
  SIGN_US=$(awk -v s="$SIGN1" 'BEGIN { printf "%.1f", (s > 0 ? 1e6 / s : 0) }')
  printf '  answers             %s bytes (head %s + body %s); one ES256 signature %s us (openssl speed)\n' \
    $((FHEAD + FBODY)) "$FHEAD" "$FBODY" "$SIGN_US"
  floor_run bare "bare"; CPU1F=$FCPU
  floor_run signed "+ one signature" -W "$(awk -v u="$SIGN_US" 'BEGIN { printf "%d", u + 0.5 }')"; CPU1FS=$FCPU
  printf '  tokend in run 1     %s us (user %s + system %s)\n' "$CPU1" "$CPU1_USER" "$CPU1_SYS"
fi

# --------------------------------------------------------------------------
# Run 1p: one worker on CPU 0, wrk on the other CPUs
# --------------------------------------------------------------------------
NCPU=$(nproc)
CPU1P=""
if [ "${BENCH_PIN:-$(( NCPU >= 2 ))}" = 1 ] && [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null; then
  echo
  echo "== run 1p: one key, tokend workers=1 on CPU 0, wrk on CPUs 1-$((NCPU - 1)) (${RUN_S} s) =="
  stop_tokend
  sed -i "s|^workers = .*|workers = 1|" "$CONF"
  START_CPUS=0 start_tokend tokend-run1p
  WRK_CPUS=1-$((NCPU - 1)) wrk_start warm1p "$HERE/token.lua" 2 BENCH_AUTH="$AUTH"; wrk_wait warm1p >/dev/null
  before=$(metric tokend_tokens_issued_total); c0=$(cpu_ticks); u0=$(user_ticks)
  WRK_CPUS=1-$((NCPU - 1)) wrk_start run1p "$HERE/token.lua" "$RUN_S" BENCH_AUTH="$AUTH"; wrk_wait run1p
  after=$(metric tokend_tokens_issued_total); c1=$(cpu_ticks); u1=$(user_ticks)
  report run1p $((after - before)) $((c1 - c0))
  TPS1P=$TPS
  CPU1P=$(us_per_token $((after - before)) $((c1 - c0)))
  CPU1P_USER=$(us_per_token $((after - before)) $((u1 - u0)))
  CPU1P_SYS=$(us_per_token $((after - before)) $((c1 - c0 - (u1 - u0))))
  printf '  tokend CPU split    user %s us + system %s us per token\n' "$CPU1P_USER" "$CPU1P_SYS"
  NON2XX1P=$(field run1p non2xx)

  # Run 1s: the same tokend, the client spinning (build/openloop -C -S).
  if [ -x "$OPENLOOP_BIN" ]; then
    echo
    echo "== run 1s: one key, tokend workers=1 on CPU 0, a spinning closed-loop client on CPUs 1-$((NCPU - 1)) (${RUN_S} s) =="
    before=$(metric tokend_tokens_issued_total); c0=$(cpu_ticks); u0=$(user_ticks)
    OPENLOOP_AUTH="$AUTH" taskset -c "1-$((NCPU - 1))" timeout -s INT $((RUN_S + 30)) "$OPENLOOP_BIN" -p "$PORT" -C -S \
      -d "$RUN_S" -c "$CONNS" -P "$WRK_PATH" -b grant_type=client_credentials >"$TMP/openloop-1s.out" 2>&1 \
      || { cat "$TMP/openloop-1s.out" >&2; die "openloop (run 1s) failed"; }
    after=$(metric tokend_tokens_issued_total); c1=$(cpu_ticks); u1=$(user_ticks)
    ols() { sed -n 's/^OPENLOOP .*\b'"$1"'=\([0-9.]*\).*/\1/p' "$TMP/openloop-1s.out"; }
    TPS1S=$(awk -v n="$(ols done)" -v x="$(ols non2xx)" -v e="$(ols elapsed_s)" 'BEGIN { printf "%.0f", (e > 0 ? (n - x) / e : 0) }')
    CPU1S=$(us_per_token $((after - before)) $((c1 - c0)))
    CPU1S_USER=$(us_per_token $((after - before)) $((u1 - u0)))
    CPU1S_SYS=$(us_per_token $((after - before)) $((c1 - c0 - (u1 - u0))))
    NON2XX1S=$(ols non2xx)
    printf '  tokens/s            %s (p50 %s ms, p99 %s ms from the send; non-2xx %s, errors %s)\n' \
      "$TPS1S" "$(ms "$(ols p50_us)")" "$(ms "$(ols p99_us)")" "$NON2XX1S" "$(ols errors)"
    printf '  tokend CPU          %s us per token: user %s us + system %s us\n' "$CPU1S" "$CPU1S_USER" "$CPU1S_SYS"
  fi
  stop_tokend
  sed -i "s|^workers = .*|workers = $WORKERS|" "$CONF"
  start_tokend tokend-run1-after-pin
fi

# --------------------------------------------------------------------------
# Run 1c: this binary against BENCH_COMPARE, interleaved (A B A B ...)
# --------------------------------------------------------------------------
if [ -n "$COMPARE" ]; then
  private_copy "$COMPARE" "$TMP/bin-compare"
  OL_RATE_C=$(( TPS1 / 2 )); [ "$OL_RATE_C" -ge 1 ] || OL_RATE_C=1
  echo
  echo "== run 1c: one key, A = this tokend ($ORIG_BIN) vs B = $COMPARE, interleaved, $COMPARE_ROUNDS rounds =="
  [ "$COMPARE_OL" = 1 ] && echo "   (each run also: open loop at $OL_RATE_C requests/s, half of run 1, ${RUN_S} s)"
  declare -A C_CPU=() C_TPS=() C_P50=() C_P99=() C_P999=()
  for round in $(seq "$COMPARE_ROUNDS"); do
    for variant in A B; do
      stop_tokend
      if [ "$variant" = A ]; then START_BIN=$BIN START_LIBDIR=$TMP/bin start_tokend "tokend-1c-$variant-$round"
      else START_BIN=$TMP/bin-compare/tokend START_LIBDIR=$TMP/bin-compare start_tokend "tokend-1c-$variant-$round"; fi
      wrk_start "1c-warm" "$HERE/token.lua" 2 BENCH_AUTH="$AUTH"; wrk_wait "1c-warm" >/dev/null
      before=$(metric tokend_tokens_issued_total); c0=$(cpu_ticks)
      wrk_start "1c-$variant-$round" "$HERE/token.lua" "$RUN_S" BENCH_AUTH="$AUTH"; wrk_wait "1c-$variant-$round"
      after=$(metric tokend_tokens_issued_total); c1=$(cpu_ticks)
      us=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n=$((after - before)) 'BEGIN { printf "%.2f", (n > 0 ? t / hz / n * 1e6 : 0) }')
      tps=$(awk -v r="$(field "1c-$variant-$round" requests)" -v x="$(field "1c-$variant-$round" non2xx)" \
              -v d="$(field "1c-$variant-$round" duration_us)" 'BEGIN { printf "%.0f", (r - x) / (d / 1e6) }')
      C_CPU[$variant]="${C_CPU[$variant]:-} $us"; C_TPS[$variant]="${C_TPS[$variant]:-} $tps"
      line=$(printf '  %s round %s   %s tokens/s, %s us of CPU per token' "$variant" "$round" "$tps" "$us")
      if [ "$COMPARE_OL" = 1 ]; then
        OPENLOOP_AUTH="$AUTH" timeout -s INT $((RUN_S + 30)) "$OPENLOOP_BIN" -p "$PORT" -r "$OL_RATE_C" \
          -d "$RUN_S" -c "$CONNS" -P "$WRK_PATH" -b grant_type=client_credentials >"$TMP/openloop-1c.out" 2>&1 \
          || { cat "$TMP/openloop-1c.out" >&2; die "openloop failed"; }
        olc() { sed -n 's/^OPENLOOP .*\b'"$1"'=\([0-9.]*\).*/\1/p' "$TMP/openloop-1c.out"; }
        C_P50[$variant]="${C_P50[$variant]:-} $(ms "$(olc p50_us)")"
        C_P99[$variant]="${C_P99[$variant]:-} $(ms "$(olc p99_us)")"
        C_P999[$variant]="${C_P999[$variant]:-} $(ms "$(olc p999_us)")"
        line+=$(printf '; open loop p50 %s p99 %s p99.9 %s ms (late %s)' "$(ms "$(olc p50_us)")" \
                  "$(ms "$(olc p99_us)")" "$(ms "$(olc p999_us)")" "$(olc late)")
      fi
      echo "$line"
    done
  done
  for variant in A B; do
    line=$(printf '  mean %s              %s tokens/s, %s us of CPU per token' "$variant" \
             "$(mean "${C_TPS[$variant]}")" "$(mean "${C_CPU[$variant]}")")
    [ "$COMPARE_OL" = 1 ] && line+=$(printf '; open loop p50 %s p99 %s p99.9 %s ms' \
             "$(mean "${C_P50[$variant]}")" "$(mean "${C_P99[$variant]}")" "$(mean "${C_P999[$variant]}")")
    echo "$line"
  done
  awk -v a="$(mean "${C_CPU[A]}")" -v b="$(mean "${C_CPU[B]}")" 'BEGIN {
    if (b > 0) printf "  A vs B              CPU per token %+.1f%% (load average now %s)\n", (a - b) / b * 100, "'"$(loadavg)"'" }'
  stop_tokend
  start_tokend tokend-run1-after-compare
fi

# --------------------------------------------------------------------------
# Run 1o: open loop at half the peak rate
# --------------------------------------------------------------------------
OL_P99=""
if [ "${BENCH_OPENLOOP:-1}" = 1 ]; then
  [ -x "$OPENLOOP_BIN" ] || die "open-loop generator not found: $OPENLOOP_BIN (scripts/build.sh normal)"
  OL_RATE=$(( TPS1 / 2 ))
  [ "$OL_RATE" -ge 1 ] || OL_RATE=1
  echo
  echo "== run 1o: one key, open loop at $OL_RATE requests/s (half of run 1), $CONNS connections, ${RUN_S} s =="
  before=$(metric tokend_tokens_issued_total); c0=$(cpu_ticks)
  OPENLOOP_AUTH="$AUTH" timeout -s INT $((RUN_S + 30)) "$OPENLOOP_BIN" -p "$PORT" -r "$OL_RATE" \
    -d "$RUN_S" -c "$CONNS" -P "$WRK_PATH" -b grant_type=client_credentials -T "$TMP/openloop-trace.txt" \
    >"$TMP/openloop.out" 2>&1 || { cat "$TMP/openloop.out" >&2; die "openloop failed"; }
  after=$(metric tokend_tokens_issued_total); c1=$(cpu_ticks)
  ol() { sed -n 's/^OPENLOOP .*\b'"$1"'=\([0-9.]*\).*/\1/p' "$TMP/openloop.out"; }
  OL_P99=$(ms "$(ol p99_us)")
  printf '  latency p50 p90 p99 p99.9 max   %s %s %s %s %s ms (from each request'"'"'s due time)\n' \
    "$(ms "$(ol p50_us)")" "$(ms "$(ol p90_us)")" "$OL_P99" "$(ms "$(ol p999_us)")" "$(ms "$(ol max_us)")"
  printf '  requests            %s sent, %s answered, non-2xx %s, errors %s, late %s, in %s s\n' \
    "$(ol sent)" "$(ol done)" "$(ol non2xx)" "$(ol errors)" "$(ol late)" "$(ol elapsed_s)"
  printf '  tokend CPU          %s us of CPU per token\n' "$(us_per_token $((after - before)) $((c1 - c0)))"
  OL_LATE=$(ol late); OL_NON2XX=$(ol non2xx)
  tail_shape "$TMP/openloop-trace.txt"
fi

# --------------------------------------------------------------------------
# Run 1a: the same key signed with other algorithms
# --------------------------------------------------------------------------
declare -A ALG_CPU=()
if [ -n "$ALGS" ]; then
  for alg in $ALGS; do
    case $alg in
      EdDSA) opts=(-algorithm ED25519) ;;
      RS256) opts=(-algorithm RSA -pkeyopt rsa_keygen_bits:2048) ;;
      *) die "BENCH_ALGS: unknown algorithm $alg (EdDSA, RS256)" ;;
    esac
    echo
    echo "== run 1a: one key, tokens signed with $alg (${RUN_S} s) =="
    stop_tokend
    (umask 077; openssl genpkey "${opts[@]}" -out "$TMP/signing-$alg.pem" 2>/dev/null)
    sed -i "s|^signing_keys = .*|signing_keys = $TMP/signing-$alg.pem|" "$CONF"
    start_tokend "tokend-$alg"
    wrk_start "warm-$alg" "$HERE/token.lua" 2 BENCH_AUTH="$AUTH"; wrk_wait "warm-$alg" >/dev/null
    before=$(metric tokend_tokens_issued_total); c0=$(cpu_ticks)
    wrk_start "run-$alg" "$HERE/token.lua" "$RUN_S" BENCH_AUTH="$AUTH"; wrk_wait "run-$alg"
    after=$(metric tokend_tokens_issued_total); c1=$(cpu_ticks)
    report "run-$alg" $((after - before)) $((c1 - c0))
    ALG_CPU[$alg]=$(us_per_token $((after - before)) $((c1 - c0)))
  done
  stop_tokend
  sed -i "s|^signing_keys = .*|signing_keys = $TMP/signing-es256.pem|" "$CONF"
  start_tokend tokend-run1-again
fi

# --------------------------------------------------------------------------
# Run 1b: plain key vs role + member + custom claims, interleaved
# --------------------------------------------------------------------------
if [ "${BENCH_MODEL:-1}" = 1 ]; then
  echo
  echo "== run 1b: plain key vs a key with a role, a member and custom claims (interleaved, ${RUN_S} s each) =="
  tokend role add bench-dev --scopes bench:read >/dev/null
  tokend member add bench jane --name "Jane Bench" >/dev/null
  MKEY_JSON=$(tokend key create --account bench --name "bench model key" --role bench-dev --member jane \
    --claims '{"plan":"pro","seats":5,"ratio":1.5,"beta":true,"regions":["eu","us"],"tenant_ref":"t-000123"}' --json)
  MAUTH=$(printf '%s' "$MKEY_JSON" | b64auth)
  unset MKEY_JSON
  wrk_start warm1b "$HERE/token.lua" 2 BENCH_AUTH="$MAUTH"; wrk_wait warm1b >/dev/null
  declare -A CPU_SUM=()
  for round in 1 2; do
    for variant in plain model; do
      a=$AUTH; [ "$variant" = model ] && a=$MAUTH
      before=$(metric tokend_tokens_issued_total); c0=$(cpu_ticks)
      wrk_start "1b-$variant-$round" "$HERE/token.lua" "$RUN_S" BENCH_AUTH="$a"; wrk_wait "1b-$variant-$round"
      after=$(metric tokend_tokens_issued_total); c1=$(cpu_ticks)
      us=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n=$((after - before)) 'BEGIN { printf "%.2f", (n > 0 ? t / hz / n * 1e6 : 0) }')
      printf '  %-6s round %s   %s tokens, %s us of CPU per token\n' "$variant" "$round" $((after - before)) "$us"
      CPU_SUM[$variant]=$(awk -v a="${CPU_SUM[$variant]:-0}" -v b="$us" 'BEGIN { print a + b }')
    done
  done
  awk -v p="${CPU_SUM[plain]}" -v m="${CPU_SUM[model]}" 'BEGIN {
    printf "  mean CPU per token  plain %.2f us, role+member+claims %.2f us (%+.1f%%)\n", p / 2, m / 2, (m - p) / p * 100 }'
  unset MAUTH
fi

echo
echo "== openssl speed ecdsap256 (5 s each; tokend idle) =="
SIGN1=${SIGN1:-$(sign_per_s)}     # (run 1f measured it already)
SIGN2=$(sign_per_s -multi 2)
printf '  signs/s 1 core      %s\n' "$SIGN1"
printf '  signs/s 2 cores     %s (-multi 2)\n' "$SIGN2"
awk -v s="$SIGN1" 'BEGIN { if (s > 0) printf "  one signature       %.1f us of CPU (compare with tokend CPU per token)\n", 1e6 / s }'
ratio() { awk -v t="$1" -v s="$SIGN2" 'BEGIN { if (s > 0) printf "%.3f", t / s; else print "n/a" }'; }
printf '  run 1 tokens/s ÷ signs/s (2 cores)   %s\n' "$(ratio "$TPS1")"
SIGN_ED=$(sign_ed_per_s); SIGN_RSA=$(sign_rsa_per_s)
printf '  Ed25519 signs/s     %s on 1 core (%s us each)\n' "$SIGN_ED" "$(awk -v s="$SIGN_ED" 'BEGIN { if (s > 0) printf "%.1f", 1e6 / s }')"
printf '  RSA 2048 signs/s    %s on 1 core (%s us each)\n' "$SIGN_RSA" "$(awk -v s="$SIGN_RSA" 'BEGIN { if (s > 0) printf "%.1f", 1e6 / s }')"
# Run 0: libtokend's mint alone (claims, base64url, signature; no HTTP, no database).
declare -A MINT_US=()
if [ -x "$MINTBENCH_BIN" ]; then
  echo
  echo "== run 0: mint alone (build/mintbench, one thread, 3 s per algorithm; tokend idle) =="
  while read -r _ a _ _ u; do
    a=${a#alg=}; u=${u#us_per_token=}; MINT_US[$a]=$u
    printf '  %-6s              %s us of CPU per token minted%s\n' "$a" "$u" "$([ "$a" = RS256 ] && echo ' (RSA 3072, the size tokend makes)')"
  done < <("$MINTBENCH_BIN" -s 3 ES256 EdDSA RS256 || die "mintbench failed")
fi
stop_tokend

# --------------------------------------------------------------------------
# Run 2: NKEYS keys, requested at random
# --------------------------------------------------------------------------
if [ "${BENCH_RUN2:-1}" = 0 ]; then
  echo; echo "(run 2 skipped: BENCH_RUN2=0)"; CPU2=""; issue16_targets; exit 0
fi
echo
echo "== run 2: $NKEYS keys over $NACCOUNTS accounts, each request with a random key =="
t0=$(date +%s.%N)
"$PY" "$HERE/gen_keys.py" --pepper-file "$TMP/pepper" --count "$NKEYS" --accounts "$NACCOUNTS" \
  --scope bench:read --copy-file "$TMP/keys.copy" --auth-file "$TMP/keys.auth"
t1=$(date +%s.%N)
# Accounts in one statement; then their limits through the CLI would take one process
# per account, so a single UPDATE raises them (the same column `account set-limit` sets).
# The insert trigger locks the account row and counts its active keys for every row:
# spreading the keys over accounts keeps that count short (one account holding 100,000
# keys would make the COPY quadratic).
sql <<EOF
BEGIN;
SET LOCAL tokend.actor = 'bench';
INSERT INTO accounts (id, name)
  SELECT format('bench-%s', lpad(i::text, 4, '0')), 'benchmark' FROM generate_series(0, $NACCOUNTS - 1) i;
UPDATE accounts SET key_limit = $PER_ACCOUNT WHERE id LIKE 'bench-%';
INSERT INTO account_scopes (account_id, scope) SELECT id, 'bench:read' FROM accounts WHERE id LIKE 'bench-%';
COMMIT;
EOF
# BENCH_BULK=0: every key through the schema's row triggers (one COPY). BENCH_BULK=1 (the
# default above 100,000 keys): the first 1,000 keys so, the others with one INSERT ... SELECT
# as the cluster's superuser with the row triggers off (session_replication_role = replica),
# setting what those triggers set (created_at, created_by, status_idx from its sequence) and
# leaving out what tokend never reads to serve a token (audit rows; NOTIFY: tokend is not
# running yet). Then every bulk row must equal a trigger-made row in every column but the
# per-key ones (checked below), so that tokend reads the same keys either way.
if [ "$BULK" = 1 ] && [ "$NKEYS" -gt 1000 ]; then
  head -n 1000 "$TMP/keys.copy" >"$TMP/keys-trig.copy"
  tail -n +1001 "$TMP/keys.copy" >"$TMP/keys-bulk.copy"
else
  cp "$TMP/keys.copy" "$TMP/keys-trig.copy"; : >"$TMP/keys-bulk.copy"
fi
sql <<EOF
BEGIN;
SET LOCAL tokend.actor = 'bench';
\copy api_keys (id, account_id, name, secret_hash, secret_hint, scopes) FROM '$TMP/keys-trig.copy'
COMMIT;
EOF
if [ -s "$TMP/keys-bulk.copy" ]; then
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$SUPER_URL" <<EOF
BEGIN;
SET LOCAL session_replication_role = replica;
CREATE TEMP TABLE bench_keys (id text, account_id text, name text, secret_hash bytea, secret_hint text,
                              scopes text[]) ON COMMIT DROP;
\copy bench_keys FROM '$TMP/keys-bulk.copy'
INSERT INTO api_keys (id, account_id, name, secret_hash, secret_hint, scopes, created_at, created_by, status_idx,
                      last_used_at)
  SELECT id, account_id, name, secret_hash, secret_hint, scopes, now(), 'bench', nextval('api_keys_status_idx_seq'),
         CASE WHEN $RECENT = 1 THEN now() - interval '1 minute' END
    FROM bench_keys;
COMMIT;
EOF
fi
t2=$(date +%s.%N)
# The steady state of "N keys cached" is every key cached and recently used: a key's
# first use of the day is written at once (one statement per key), later uses in the
# worker's batch. A new key cannot be inserted as used (the insert trigger refuses
# last_used_at), so one UPDATE marks the trigger-made keys used a minute ago, as
# tokend's flush would have (the bulk ones were inserted so); BENCH_RECENT_USE=0:
# never used, every first use written during the measure.
if [ "$RECENT" = 1 ]; then
  sql -c "UPDATE api_keys SET last_used_at = now() - interval '1 minute'
           WHERE account_id LIKE 'bench-%' AND last_used_at IS NULL"
fi
if [ -s "$TMP/keys-bulk.copy" ]; then
  # Faithful: apart from the per-key columns, a bulk row reads exactly as a trigger-made one
  # (the trigger-made rows, the first status indexes, against every 100th bulk row: the
  # whole table takes a minute).
  shapes=$(sql -At -c "SELECT count(DISTINCT to_jsonb(k) - 'id' - 'account_id' - 'name' - 'secret_hash'
                         - 'secret_hint' - 'status_idx' - 'created_at' - 'updated_at' - 'last_used_at')
                       FROM api_keys k WHERE account_id LIKE 'bench-%'
                        AND (k.status_idx % 100 = 0 OR k.id IN (SELECT id FROM api_keys WHERE account_id LIKE 'bench-%'
                                         ORDER BY status_idx LIMIT 1000))")
  [ "$shapes" = 1 ] || die "bulk-inserted keys differ from trigger-inserted ones ($shapes shapes)"
  unused=$(sql -At -c "SELECT count(*) FROM api_keys WHERE account_id LIKE 'bench-%'
                         AND (last_used_at IS NULL) <> ($RECENT = 0)")
  [ "$unused" = 0 ] || die "$unused bulk keys are not marked as BENCH_RECENT_USE=$RECENT says"
fi
t3=$(date +%s.%N)
n=$(sql -At -c "SELECT count(*) FROM api_keys WHERE account_id LIKE 'bench-%'")
[ "$n" = "$NKEYS" ] || die "inserted $n keys, expected $NKEYS"
printf '  provisioning        %s keys generated in %.1f s, inserted (%s) in %.1f s, marked used and checked in %.1f s%s\n' \
  "$NKEYS" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
  "$([ -s "$TMP/keys-bulk.copy" ] && echo "1,000 through the triggers, the rest in bulk" || echo "one COPY through the triggers")" \
  "$(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }')" \
  "$(awk -v a="$t2" -v b="$t3" 'BEGIN { print b - a }')" "$([ "$RECENT" = 1 ] || echo ' (not: BENCH_RECENT_USE=0)')"

# Every key stays cached through the whole of run 2 (cache_ttl, default 5 min, would
# reload the first keys of a long cache-loading pass during the measure).
sed -i 's/^cache_ttl = .*//' "$CONF"; echo "cache_ttl = 2h" >>"$CONF"
start_tokend tokend-run2
printf '  tokend RSS          %s kB (started, cache empty)\n' "$(rss_kb)"
code=$(curl -s -o "$TMP/first.json" -w '%{http_code}' -H "Authorization: Basic $(head -1 "$TMP/keys.auth")" \
         -d grant_type=client_credentials "$BASE/oauth2/token")
[ "$code" = 200 ] || die "token request with a generated key got HTTP $code: $(cat "$TMP/first.json")"

# Cold cache: walk every key once, each request a cache miss (a database lookup)
# answered without a signature (scope bench:none is not the keys': 400 after the key
# is authenticated and cached); stop wrk as soon as tokend's cache holds every key.
# The rate is taken between 10% and 60% of the keys cached: near the end one wrk thread
# may have walked all its keys and be asking for cached ones while the other finishes.
m0=$(metric tokend_key_cache_misses_total)
ks0=$(metric tokend_db_key_statements_total); kl0=$(metric tokend_db_key_lookups_total)   # (B) batches
# The CPU of tokend's PostgreSQL backends (its pool's and listener's connections, open since start)
WARM_BACKENDS=$(sql -At -c "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE application_name = 'tokend'")
pg_ticks() { local s=0 p; for p in $WARM_BACKENDS; do s=$((s + $(cpu_ticks "$p" 2>/dev/null || echo 0))); done; echo "$s"; }
wrk_start warm2 "$HERE/token_random.lua" "$WARM_MAX" BENCH_KEYS_FILE="$TMP/keys.auth" BENCH_KEYS_MODE=seq \
  BENCH_SCOPE=bench:none
ta=""; tb=""
for _ in $(seq $((WARM_MAX * 10))); do
  kill -0 "$WRK_PID" 2>/dev/null || break
  entries=$(metric tokend_key_cache_entries); entries=${entries:-0}
  if [ -z "$ta" ] && [ "$entries" -ge $((NKEYS / 10)) ]; then
    ta=$(date +%s.%N); ea=$entries; ca=$(cpu_ticks); pa=$(pg_ticks)
    if [ "${BENCH_PERF_WARM:-0}" = 1 ] && command -v perf >/dev/null 2>&1; then
      # tokend and the backends of its pool (application_name tokend: the listener's too)
      WARM_PIDS=$(sql -At -c "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE application_name = 'tokend'")
      perf record -F 999 -g -p "$TOKEND_PID${WARM_PIDS:+,$WARM_PIDS}" -o "$TMP/perf-warm.data" -- sleep 3 \
        >"$TMP/perf-warm.log" 2>&1 & PERF_PID=$!
    fi
  elif [ -n "$ta" ] && [ -z "$tb" ] && [ "$entries" -ge $((NKEYS * 6 / 10)) ]; then
    tb=$(date +%s.%N); eb=$entries; cb=$(cpu_ticks); pb=$(pg_ticks)
  fi
  [ "$entries" -ge "$NKEYS" ] && break
  sleep 0.1
done
[ -n "$tb" ] || { tb=$(date +%s.%N); eb=$(metric tokend_key_cache_entries); cb=$(cpu_ticks); pb=$(pg_ticks); }
[ -n "$ta" ] || { ta=$tb; ea=$eb; ca=$cb; pa=$pb; }
kill -INT "$WRK_PID" 2>/dev/null || true
wrk_wait warm2 >/dev/null
m1=$(metric tokend_key_cache_misses_total)
entries=$(metric tokend_key_cache_entries)
LOOKUPS=$(awk -v e=$((eb - ea)) -v a="$ta" -v b="$tb" 'BEGIN { printf "%.0f", (b > a ? e / (b - a) : 0) }')
echo "  -- cache-loading pass (sequential, every request a cache miss, no signature) --"
printf '  lookups/s           %s (keys cached from %s to %s in %.2f s; in all %s misses, %s requests in %s s, p99 %s ms)\n' \
  "$LOOKUPS" "$ea" "$eb" "$(awk -v a="$ta" -v b="$tb" 'BEGIN { print b - a }')" $((m1 - m0)) "$(field warm2 requests)" \
  "$(awk -v d="$(field warm2 duration_us)" 'BEGIN { printf "%.2f", d / 1e6 }')" "$(ms "$(field warm2 p99_us)")"
awk -v t=$((cb - ca)) -v hz="$CLK_TCK" -v n=$((eb - ea)) 'BEGIN {
  printf "  tokend CPU          %.1f us per lookup (same span)\n", (n > 0 ? t / hz / n * 1e6 : 0) }'
awk -v t=$((pb - pa)) -v hz="$CLK_TCK" -v n=$((eb - ea)) 'BEGIN {
  printf "  PostgreSQL CPU      %.1f us per lookup (tokend'"'"'s backends, same span)\n", (n > 0 ? t / hz / n * 1e6 : 0) }'
printf '  cache entries       %s\n' "$entries"
# (B) how many lookups each statement carried (empty with a binary older than the metrics)
ks1=$(metric tokend_db_key_statements_total); kl1=$(metric tokend_db_key_lookups_total)
if [ -n "$PERF_PID" ]; then
  wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""
  echo "  perf: the loading pass, 3 s: CPU by process and library (tokend; postgres: its pool's backends)"
  perf report -i "$TMP/perf-warm.data" --stdio --no-children -g none --sort comm,dso 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | head -10 | sed 's/^ */    /' || true
  echo "  perf: top 40 symbols (self time)"
  perf report -i "$TMP/perf-warm.data" --stdio --no-children -g none --sort comm,dso,sym \
    >"$TMP/perf-warm.txt" 2>/dev/null || true
  grep -E '^ +[0-9.]+%' "$TMP/perf-warm.txt" | head -40 | sed 's/^ */    /' || true
fi
[ -n "$ks1" ] && awk -v s=$((ks1 - ${ks0:-0})) -v l=$((kl1 - ${kl0:-0})) -v c="$(metric tokend_db_connections)" 'BEGIN {
  printf "  key statements      %d for %d lookups (%.1f per statement), %s pool connections\n", s, l, (s > 0 ? l / s : 0), c }'

# The database's side of a run: the CPU of tokend's backends (the last-used writes,
# at most one a key per last_used_precision) and how many times were written.
# The CPU of tokend's backends as "pid:ticks ..." (looked up again each time: the pool
# replaces a connection it drops, e.g. after a failed batch; a sum over the pids of the
# start alone lost a closed backend's ticks and once printed -1.0 us a token).
pg_snapshot() {
  local p out=""
  for p in $(sql -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'tokend'"); do
    out+="$p:$(cpu_ticks "$p" 2>/dev/null || echo gone) "
  done
  echo "$out"
}
pg_mark() { PG_SNAP0=$(pg_snapshot); W0=$(metric tokend_last_used_written_total); }
pg_report() {   # $1: tokens of the run
  local w1 ticks gone
  read -r ticks gone < <(printf '%s\n%s\n' "$PG_SNAP0" "$(pg_snapshot)" | awk '
    NR == 1 { for (i = 1; i <= NF; i++) { split($i, a, ":"); t0[a[1]] = a[2] } }
    NR == 2 { for (i = 1; i <= NF; i++) { split($i, a, ":"); if (a[2] == "gone") continue; seen[a[1]] = 1
                s += (a[1] in t0 && t0[a[1]] != "gone") ? a[2] - t0[a[1]] : a[2] } }
    END { for (p in t0) if (!(p in seen)) g++; printf "%d %d\n", s, g }')
  w1=$(metric tokend_last_used_written_total)
  printf '; PostgreSQL %s us a token (%s last-used writes%s)' "$(us_per_token "$1" "$ticks")" \
    "$([ -n "$w1" ] && echo $((w1 - ${W0:-0})) || echo "n/a")" \
    "$([ "$gone" -gt 0 ] && echo "; $gone backend(s) closed meanwhile, their share missing")"
}
echo "  -- measured: random keys, all cached, interleaved with the one key ($RUN2_ROUNDS rounds, same tokend) --"
echo "     (each run's CPU taken until its last last-used batch is written: ${SETTLE_S} s after its load)"
settle
R_CPU=""; O_CPU=""; R_TPS=""
for round in $(seq "$RUN2_ROUNDS"); do
  before=$(metric tokend_tokens_issued_total); c0=$(cpu_ticks); pg_mark
  wrk_start "run2-one-$round" "$HERE/token.lua" "$RUN_S" BENCH_AUTH="$AUTH"; wrk_wait "run2-one-$round"
  after=$(metric tokend_tokens_issued_total); settle; c1=$(cpu_ticks)
  us=$(us_per_token $((after - before)) $((c1 - c0))); O_CPU+=" $us"
  printf '  round %s one key      %s tokens, %s us of CPU per token%s\n' "$round" $((after - before)) "$us" \
    "$(pg_report $((after - before)))"
  before=$(metric tokend_tokens_issued_total); h0=$(metric tokend_key_cache_hits_total); m0=$(metric tokend_key_cache_misses_total)
  c0=$(cpu_ticks); pg_mark
  wrk_start "run2-$round" "$HERE/token_random.lua" "$RUN_S" BENCH_KEYS_FILE="$TMP/keys.auth"
  # The rate's window: wrk's own last RUN_S seconds (both threads sending),
  # tokens, wall time and CPU over the same span. (wrk's requests / duration
  # is no rate here: with many keys its second thread formats its requests
  # while the first one already sends, before wrk's clock starts; the CPU
  # window runs on past the load until the last-used batch is written.)
  : >"$TMP/window-$round"
  load_sampler "$TMP/window-$round" & SAMPLER_PID=$!
  wrk_wait "run2-$round"
  wait "$SAMPLER_PID" 2>/dev/null || true
  wb="$(date +%s.%N) $(metric tokend_tokens_issued_total) $(cpu_ticks)"
  wa=$(awk -v t="${wb%% *}" -v d="$RUN_S" '$1 >= t - d { print; exit }' "$TMP/window-$round")
  [ -n "$wa" ] || wa=$wb
  after=$(metric tokend_tokens_issued_total); h1=$(metric tokend_key_cache_hits_total); m1=$(metric tokend_key_cache_misses_total)
  settle; c1=$(cpu_ticks)
  us=$(us_per_token $((after - before)) $((c1 - c0))); R_CPU+=" $us"
  printf '  round %s random keys  %s tokens, %s us of CPU per token; cache hits/misses %s / %s%s\n' \
    "$round" $((after - before)) "$us" $((h1 - h0)) $((m1 - m0)) "$(pg_report $((after - before)))"
  [ "$round" = 1 ] || continue
  report_run2 "run2-$round" "$wa" "$wb" $((after - before)) $((c1 - c0))
  R_TPS=$TPS
done
TPS2=$R_TPS
CPU2=$(mean "$R_CPU"); CPU1R=$(mean "$O_CPU")
printf '  mean CPU per token  random keys %s us, one key %s us (%+.1f%%)\n' "$CPU2" "$CPU1R" \
  "$(awk -v x="$CPU2" -v y="$CPU1R" 'BEGIN { print (y > 0 ? (x - y) / y * 100 : 0) }')"

# The same again at one rate for both, from one client (openloop: the one key, or
# a key picked at random per request from the same file, sent without a copy).
# wrk's random-key script costs wrk more per request (a random one of NKEYS
# formatted requests: a cache miss or two of its own), so the closed loops above
# run tokend at two loads, and a lighter load costs more CPU per token: fewer
# requests per wake-up and per epoll_wait. At one rate only the work per key
# differs. The rate: BENCH_RUN2_RATE, or 80% of the random-key closed loop's.
CPU2M=""; CPU1M=""; MRATE=""
if [ "${BENCH_RUN2_MATCHED:-1}" = 1 ] && [ -x "$OPENLOOP_BIN" ]; then
  MRATE=${BENCH_RUN2_RATE:-$(awk -v t="${R_TPS:-0}" 'BEGIN { printf "%d", t * 0.8 }')}
  [ "$MRATE" -ge 1 ] || MRATE=1000
  echo "  -- measured: both at $MRATE requests/s (openloop, $CONNS connections), interleaved ($RUN2_ROUNDS rounds) --"
  M_R=""; M_O=""
  for round in $(seq "$RUN2_ROUNDS"); do
    for v in one random; do
      before=$(metric tokend_tokens_issued_total); c0=$(cpu_ticks); pg_mark
      if [ "$v" = one ]; then
        OPENLOOP_AUTH="$AUTH" timeout -s INT $((RUN_S + 30)) "$OPENLOOP_BIN" -p "$PORT" -r "$MRATE" -d "$RUN_S" \
          -c "$CONNS" -P "$WRK_PATH" -b grant_type=client_credentials >"$TMP/ol-m-$v-$round.out" 2>&1 || true
      else
        OPENLOOP_KEYS_FILE="$TMP/keys.auth" timeout -s INT $((RUN_S + 60)) "$OPENLOOP_BIN" -p "$PORT" -r "$MRATE" \
          -d "$RUN_S" -c "$CONNS" -P "$WRK_PATH" -b grant_type=client_credentials >"$TMP/ol-m-$v-$round.out" 2>&1 || true
      fi
      after=$(metric tokend_tokens_issued_total); settle; c1=$(cpu_ticks)
      us=$(us_per_token $((after - before)) $((c1 - c0)))
      if [ "$v" = one ]; then M_O+=" $us"; else M_R+=" $us"; fi
      olm() { sed -n 's/^OPENLOOP .*\b'"$1"'=\([0-9.]*\).*/\1/p' "$TMP/ol-m-$v-$round.out"; }
      printf '  round %s %-11s %s tokens, %s us of CPU per token; late %s, non-2xx %s, p99 %s ms%s\n' "$round" \
        "$([ "$v" = one ] && echo "one key" || echo "random keys")" $((after - before)) "$us" \
        "$(olm late)" "$(olm non2xx)" "$(ms "$(olm p99_us)")" "$(pg_report $((after - before)))"
    done
  done
  CPU2M=$(mean "$M_R"); CPU1M=$(mean "$M_O")
  printf '  mean CPU per token  random keys %s us, one key %s us (%+.1f%%), both at %s requests/s\n' "$CPU2M" "$CPU1M" \
    "$(awk -v x="$CPU2M" -v y="$CPU1M" 'BEGIN { print (y > 0 ? (x - y) / y * 100 : 0) }')" "$MRATE"
fi
RSS2=$(rss_kb)
printf '  tokend RSS          %s kB (%s keys cached)\n' "$RSS2" "$(metric tokend_key_cache_entries)"
# memtrim.c hands free heap pages back after bursts of key records (malloc_trim on its own
# thread, but it holds the malloc arenas' locks while it runs): how often, and for how long.
awk -v n="$(metric tokend_memory_trims_total)" -v s="$(metric tokend_memory_trim_seconds_total)" 'BEGIN {
  printf "  memory trims        %d since the start, %.1f ms in all, %.2f ms each on average\n",
         n, s * 1000, (n > 0 ? s * 1000 / n : 0) }'
if [ -n "${BENCH_MEMDUMP:-}" ]; then
  mem_dump "$TMP/mem-run2"
fi
printf '  run 2 tokens/s ÷ signs/s (2 cores)   %s\n' "$(ratio "$TPS2")"
profile run2 "$HERE/token_random.lua" BENCH_KEYS_FILE="$TMP/keys.auth"

echo
echo "== summary (targets on 2 cores, load generator on the same machine) =="
printf '  one key             %s tokens/s (target >= 12000), p99 %s ms (target < 10)\n' "$TPS1" "$(ms "$(field run1 p99_us)")"
printf '  %-19s %s tokens/s (target >= 10000), p99 %s ms (target < 10)\n' "$NKEYS random keys" "$TPS2" "$(ms "$(field run2-1 p99_us)")"
printf '  RSS, keys cached    %s kB (issue 16: <= 60 MB with 100,000 keys, <= 300 MB with 1,000,000)\n' "$RSS2"
printf '  signs/s 1 / 2 cores %s / %s\n' "$SIGN1" "$SIGN2"
grep -qE 'ERROR|error' "$TMP/tokend-run1.log" "$TMP/tokend-run2.log" 2>/dev/null \
  && { echo "  tokend logged errors:"; grep -hE 'ERROR|error' "$TMP/tokend-run1.log" "$TMP/tokend-run2.log" | head -5 | sed 's/^/    /'; }
stop_tokend
issue16_targets
exit 0
