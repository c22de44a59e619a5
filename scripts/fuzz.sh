#!/usr/bin/env bash
# Build the libFuzzer harnesses of tests/fuzz and run each one.
#
#   scripts/fuzz.sh SECONDS [--update] [HARNESS...]
#   scripts/fuzz.sh --build-only      build build-fuzz/ and stop (scripts/test.sh
#                                     builds it while other tests run)
#
# Builds build-fuzz/ (clang, -DTOKEND_FUZZ=ON: coverage + ASan + UBSan), then
# for each harness (default: all seven):
#   1. replays every seed of tests/fuzz/corpus/<harness>/ once;
#   2. fuzzes for SECONDS with -rss_limit_mb=256 -timeout=1 (FUZZ_UNIT_TIMEOUT), starting from a
#      temporary copy of that corpus (the run replays it again first).
# Harnesses run one at a time (FUZZ_JOBS=N: N at a time; on a shared machine each then
# gets less than a core and executes fewer inputs in its SECONDS).
# Prints the executions per harness (libFuzzer's stat::number_of_executed_units)
# and exits non-zero when any harness crashed, leaked, timed out or ran out of
# memory; the inputs that did it and the logs are kept in build-fuzz/crashes/
# (reproduce with: build-fuzz/fuzz/<harness> <input>).
# The committed corpus is never written, unless --update is given: then the
# new inputs that add coverage are merged into it (libFuzzer -merge=1).
set -uo pipefail
# Seconds one input may take before it counts as a finding (libFuzzer -timeout).
# 1 s for campaigns; scripts/test.sh uses more, since CI shares two busy cores.
UNIT_TIMEOUT=${FUZZ_UNIT_TIMEOUT:-1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PKG_CONFIG_PATH="$ROOT/.deps/libjwt/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
ALL=(fuzz_form fuzz_basic fuzz_keyfmt fuzz_verify fuzz_jwks fuzz_admin_json fuzz_config fuzz_statuslist)

usage() { echo "usage: $0 SECONDS [--update] [HARNESS...] | $0 --build-only   (harnesses: ${ALL[*]})" >&2; exit 2; }
BUILD_ONLY=0
if [ "${1:-}" = --build-only ] && [ $# -eq 1 ]; then
  BUILD_ONLY=1
  SECONDS_EACH=1
else
  SECONDS_EACH=${1:-}
fi
[[ "$SECONDS_EACH" =~ ^[1-9][0-9]*$ ]] || usage
shift
UPDATE=0
HARNESSES=()
for a in "$@"; do
  case "$a" in
    --update) UPDATE=1 ;;
    fuzz_*) [ -f "$ROOT/tests/fuzz/$a.c" ] || usage; HARNESSES+=("$a") ;;
    *) usage ;;
  esac
done
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=("${ALL[@]}")

BUILD="$ROOT/build-fuzz"
echo "fuzz.sh: building $BUILD (clang, libFuzzer + ASan + UBSan)"
if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
         -DTOKEND_FUZZ=ON >/dev/null &&
       cmake --build "$BUILD" --target fuzz -j"$(nproc)" >"$BUILD/build.log" 2>&1; }; then
  tail -40 "$BUILD/build.log" 2>/dev/null
  echo "fuzz.sh: build failed" >&2
  exit 1
fi
[ $BUILD_ONLY -eq 0 ] || exit 0

WORK=$(mktemp -d /tmp/tokend-fuzz-XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM
CRASHES="$BUILD/crashes"
mkdir -p "$CRASHES"
# Sanitizer settings: the caller's (scripts/test.sh sets its own), else these;
# ASan's quarantine (256 MB by default) is cut to 64 MB so that it does not
# push a long run past -rss_limit_mb=256 on its own.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1}
export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=64"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# A watchdog per libFuzzer process: a sanitizer report that hangs (seen once
# while it stopped the world to list the heap after an out-of-memory) must not
# hang the run. Killed counts as failed.
WATCHDOG=$((SECONDS_EACH * 2 + 60))

# Harnesses run FUZZ_JOBS at a time (default 1); each libFuzzer
# process is single-threaded, so each still fuzzes for SECONDS on a core of its
# own. Each harness's messages and result go to files, printed in order after.
JOBS=${FUZZ_JOBS:-1}
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: FUZZ_JOBS must be a positive integer" >&2; exit 2; }

# One harness: replay, fuzz, keep what failed, merge on --update. Writes
# $WORK/$h.result: "result|executions|seeds|corpus files|peak RSS".
fuzz_one() {
  local h=$1
  local bin="$BUILD/fuzz/$h"
  local seeds="$ROOT/tests/fuzz/corpus/$h"
  local corpus="$WORK/corpus/$h"
  local log="$WORK/$h.log"
  local result=ok nseeds=0 execs=0 rss= rc f ncorpus
  mkdir -p "$corpus" "$WORK/artifacts/$h"
  if [ -d "$seeds" ]; then
    cp -R -p "$seeds"/. "$corpus"/
    nseeds=$(find "$seeds" -type f | wc -l)
  fi

  # 1. Replay every seed once (each file run as a single input).
  if [ "$nseeds" -gt 0 ]; then
    if ! find "$seeds" -type f -print0 |
         xargs -0 timeout -k 10 "$WATCHDOG" "$bin" -rss_limit_mb=256 -timeout="$UNIT_TIMEOUT" \
           -artifact_prefix="$WORK/artifacts/$h/" >"$WORK/$h.replay.log" 2>&1; then
      result="REPLAY FAILED"
      tail -30 "$WORK/$h.replay.log"
    fi
  fi

  # 2. Fuzz for SECONDS from a copy of the corpus (replayed first by libFuzzer).
  if [ "$result" = ok ]; then
    echo "fuzz.sh: $h: $nseeds seeds, fuzzing for ${SECONDS_EACH}s"
    timeout -k 10 "$WATCHDOG" "$bin" "$corpus" -max_total_time="$SECONDS_EACH" \
      -rss_limit_mb=256 -timeout="$UNIT_TIMEOUT" \
      -print_final_stats=1 -artifact_prefix="$WORK/artifacts/$h/" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    execs=${execs:-0}
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    if [ $rc -ne 0 ]; then
      result="FAILED (exit $rc)"
      grep -E -m5 'ERROR: |broken promise|SUMMARY: ' "$log"
      tail -5 "$log"
    fi
  fi
  if [ "$result" != ok ]; then
    for f in "$WORK/artifacts/$h"/*; do
      [ -f "$f" ] || continue
      cp "$f" "$CRASHES/$h-$(basename "$f")"
      echo "fuzz.sh: $h: kept $CRASHES/$h-$(basename "$f")"
    done
    cp "$WORK/$h.replay.log" "$CRASHES/$h.replay.log" 2>/dev/null
    cp "$log" "$CRASHES/$h.log" 2>/dev/null
  elif [ $UPDATE -eq 1 ]; then
    mkdir -p "$seeds"
    timeout -k 10 "$WATCHDOG" "$bin" -merge=1 -rss_limit_mb=256 -timeout="$UNIT_TIMEOUT" "$seeds" "$corpus" \
      >"$WORK/$h.merge.log" 2>&1 ||
      echo "fuzz.sh: $h: merge into $seeds failed" >&2
  fi
  ncorpus=$(find "$corpus" -type f | wc -l)
  printf '%s|%s|%s|%s|%s\n' "$result" "$execs" "$nseeds" "$ncorpus" "$rss" >"$WORK/$h.result"
}

running=0
for h in "${HARNESSES[@]}"; do
  if [ $running -ge "$JOBS" ]; then
    wait -n
    running=$((running - 1))
  fi
  fuzz_one "$h" >"$WORK/$h.out" 2>&1 &
  running=$((running + 1))
done
wait

failed=()
total=0
summary=$(printf '%-16s %6s %12s %9s %7s %8s  %s' harness seeds executions exec/s corpus peak-rss result)
for h in "${HARNESSES[@]}"; do
  cat "$WORK/$h.out" 2>/dev/null
  result="FAILED (no result)"; execs=0; nseeds=0; ncorpus=0; rss=
  [ -f "$WORK/$h.result" ] && IFS='|' read -r result execs nseeds ncorpus rss <"$WORK/$h.result"
  [ "$result" = ok ] || failed+=("$h")
  total=$((total + execs))
  summary+=$(printf '\n%-16s %6d %12d %9d %7d %8s  %s' "$h" "$nseeds" "$execs" \
                    $((execs / SECONDS_EACH)) "$ncorpus" "${rss:+${rss} MB}" "$result")
done

echo
echo "$summary"
printf '%-16s %6s %12d\n' total "" "$total"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]} (inputs and logs in $CRASHES)"
  exit 1
fi
echo "fuzz.sh: no crash, leak, timeout or out-of-memory in ${#HARNESSES[@]} harness(es)"
