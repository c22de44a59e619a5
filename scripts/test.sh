#!/usr/bin/env bash
# The test command: install dependencies, build twice (normal, and ASan+UBSan),
# run every unit and end-to-end test against both builds, replay the fuzz
# corpora and fuzz each harness briefly (scripts/fuzz.sh 10), stop everything
# it started (even when a test fails), exit non-zero on any failure.
#
#   scripts/test.sh            everything
#   scripts/test.sh --quick    normal build only
# Extra pytest arguments can be given in TOKEND_PYTEST_ARGS (e.g. "-k token -x").
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=/usr/bin/python3
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1

STARTED=$(date +%s)
log() { printf '\n=== test.sh: %s (%ss)\n' "$*" "$(( $(date +%s) - STARTED ))"; }

cleanup() {
  # pytest stops its own PostgreSQL and tokend processes; this catches strays
  # from a killed run: processes whose command line points into our temp dirs.
  pkill -f "tokend-e2e-" 2>/dev/null || true
  for d in /tmp/tokend-e2e-*; do
    [ -d "$d/pg/data" ] && scripts/pg.sh stop "$d/pg" immediate >/dev/null 2>&1
  done
  rm -rf /tmp/tokend-e2e-* 2>/dev/null || true
}
trap cleanup EXIT INT TERM

log "installing dependencies"
scripts/install-deps.sh || exit 1

failures=0
builds=(normal)
[ $QUICK -eq 1 ] || builds+=(sanitize)

for b in "${builds[@]}"; do
  dir=build; [ "$b" = sanitize ] && dir=build-sanitize
  log "building ($b)"
  if ! scripts/build.sh "$b" >"$ROOT/$dir.log" 2>&1; then
    tail -40 "$ROOT/$dir.log"; echo "build ($b) failed"; exit 1
  fi
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"
  log "unit tests ($b)"
  (cd "$ROOT/$dir" && ctest --output-on-failure -j2) || failures=$((failures + 1))
  log "end-to-end tests ($b)"
  TOKEND_BIN="$ROOT/$dir/tokend" TOKEND_BUILD="$b" \
    $PY -m pytest -c tests/e2e/pytest.ini tests/e2e ${TOKEND_PYTEST_ARGS:-} || failures=$((failures + 1))
done

if [ $QUICK -eq 0 ]; then
  log "fuzzing (libFuzzer + ASan + UBSan: seed corpora replayed, then 10 s per harness)"
  FUZZ_UNIT_TIMEOUT=10 scripts/fuzz.sh 10 || failures=$((failures + 1))
fi

log "done: $failures failing suite(s)"
[ $failures -eq 0 ]
