#!/usr/bin/env bash
# The test command: install dependencies, build twice (normal, and ASan+UBSan),
# run every unit and end-to-end test against both builds, replay the fuzz
# corpora and fuzz each harness briefly (scripts/fuzz.sh 10), stop everything
# it started (even when a test fails), exit non-zero on any failure.
# The sanitized build and the fuzz harnesses are built while the normal build's
# tests run, at the lowest CPU priority (nice 19): they take the CPU time the
# tests leave idle, and do not squeeze the tests' timing bounds.
#
#   scripts/test.sh            everything
#   scripts/test.sh --quick    normal build only (every test; no fuzzing)
#   scripts/test.sh --fast     normal build only, without the tests marked slow
#                              (pytest -m "not slow": those over ~5 s; no fuzzing)
# Extra pytest arguments can be given in TOKEND_PYTEST_ARGS (e.g. "-k token -x").
# The end-to-end tests run on TOKEND_PYTEST_WORKERS pytest-xdist workers (default
# 2; 0 runs them in one process), a test file per worker at a time (--dist
# loadfile: a file's module fixtures and order stay whole); each worker is a
# session of its own with its own PostgreSQL cluster (tests/e2e/conftest.py).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=/usr/bin/python3
WORKERS=${TOKEND_PYTEST_WORKERS:-2}
QUICK=0
MARKS=()
case "${1:-}" in
  "") ;;
  --quick) QUICK=1 ;;
  --fast) QUICK=1; MARKS=(-m "not slow") ;;
  *) echo "usage: $0 [--quick | --fast]" >&2; exit 2 ;;
esac

STARTED=$(date +%s)
log() { printf '\n=== test.sh: %s (%ss)\n' "$*" "$(( $(date +%s) - STARTED ))"; }

# Everything the end-to-end tests create (PostgreSQL cluster, signing keys, work
# files, pytest's tmp_path) goes under a directory private to this run
# (TOKEND_E2E_TMPDIR), and pytest runs in a process group of its own whose id is
# recorded: cleanup stops only what this run started, never another run's
# processes or clusters on a shared machine (no name patterns).
E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/tokend-e2e-run.XXXXXXXX") || exit 1
chmod 755 "$E2E_TMP"   # as root, PostgreSQL runs as tokendpg and must reach its cluster
export TOKEND_E2E_TMPDIR="$E2E_TMP"
PYTEST_PGID=
PREBUILD_PGID=

cleanup() {
  # pytest stops its own PostgreSQL and tokend processes; this catches strays
  # from a killed run: this run's pytest process group (by its recorded id),
  # then the clusters under this run's private directory (pg.sh stops a
  # cluster by the PID in its postmaster.pid).
  local g
  for g in "$PYTEST_PGID" "$PREBUILD_PGID"; do
    [ -n "$g" ] || continue
    kill -TERM -- "-$g" 2>/dev/null && sleep 1
    kill -KILL -- "-$g" 2>/dev/null
  done
  PYTEST_PGID=
  PREBUILD_PGID=
  for d in "$E2E_TMP"/tokend-e2e-*; do
    [ -d "$d/pg/data" ] && scripts/pg.sh stop "$d/pg" immediate >/dev/null 2>&1
  done
  rm -rf "$E2E_TMP" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT   # exit (so cleanup runs once), do not go on to the next build
trap 'exit 143' TERM

log "installing dependencies"
scripts/install-deps.sh || exit 1

XDIST=()
if [ "$WORKERS" != 0 ]; then
  if $PY -c 'import xdist' 2>/dev/null; then
    XDIST=(-n "$WORKERS" --dist loadfile)
  else
    echo "test.sh: pytest-xdist is missing (python3-pytest-xdist): the end-to-end tests run in one process"
  fi
fi

failures=0
builds=(normal)
[ $QUICK -eq 1 ] || builds+=(sanitize)

for b in "${builds[@]}"; do
  dir=build; [ "$b" = sanitize ] && dir=build-sanitize
  if [ "$b" = sanitize ]; then
    log "waiting for the background builds (sanitize, fuzz)"
    wait "$PREBUILD_PGID"; rc=$?
    PREBUILD_PGID=
    if [ $rc -ne 0 ]; then
      tail -40 "$ROOT/build-sanitize.log" "$ROOT/build-fuzz.log" 2>/dev/null
      echo "background build (sanitize or fuzz) failed"; exit 1
    fi
  else
    log "building ($b)"
    if ! scripts/build.sh "$b" >"$ROOT/$dir.log" 2>&1; then
      tail -40 "$ROOT/$dir.log"; echo "build ($b) failed"; exit 1
    fi
  fi
  if [ "$b" = normal ] && [ $QUICK -eq 0 ]; then
    # The sanitized tree and the fuzz harnesses, built while this build's tests
    # run (nice 19: only the CPU they leave idle). setsid: a process group of its
    # own whose id ($!) cleanup stops, as for pytest below.
    log "building (sanitize, then fuzz) in the background at nice 19"
    setsid nice -n 19 bash -c 'scripts/build.sh sanitize >"$1/build-sanitize.log" 2>&1 &&
                               scripts/fuzz.sh --build-only >"$1/build-fuzz.log" 2>&1' _ "$ROOT" &
    PREBUILD_PGID=$!
  fi
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"
  log "unit tests ($b)"
  (cd "$ROOT/$dir" && ctest --output-on-failure -j2) || failures=$((failures + 1))
  log "end-to-end tests ($b)"
  # --durations: the 25 slowest tests are listed at the end (where CI time goes).
  # The console's screenshots outlive the run's temp directory: $dir/screenshots.
  # setsid: pytest and everything it starts form a process group of their own,
  # led by pytest (a background job of a script is no group leader, so setsid
  # does not fork: $! is pytest's PID and the group's id).
  TOKEND_BIN="$ROOT/$dir/tokend" TOKEND_BUILD="$b" \
  TOKEND_SCREENSHOT_DIR="${TOKEND_SCREENSHOT_DIR:-$ROOT/$dir/screenshots}" \
    setsid $PY -m pytest -c tests/e2e/pytest.ini tests/e2e --basetemp="$E2E_TMP/pytest-$b" \
      --durations=25 "${XDIST[@]}" "${MARKS[@]}" ${TOKEND_PYTEST_ARGS:-} &
  PYTEST_PGID=$!
  wait "$PYTEST_PGID" || failures=$((failures + 1))
  PYTEST_PGID=
done

if [ $QUICK -eq 0 ]; then
  log "fuzzing (libFuzzer + ASan + UBSan: seed corpora replayed, then 10 s per harness)"
  FUZZ_UNIT_TIMEOUT=10 scripts/fuzz.sh 10 || failures=$((failures + 1))
fi

log "done: $failures failing suite(s)"
[ $failures -eq 0 ]
