#!/usr/bin/env bash
# The libjwt bootstrap's decision (scripts/libjwt-choose.sh), without the
# network: which libjwt install-deps.sh uses or builds for each situation.
#   libjwt_choose.sh   (a ctest: exit 0 when every case holds)
set -uo pipefail
CHOOSE="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/libjwt-choose.sh"
fail=0
n=0

# expect RC STDOUT STDERR_SUBSTRING -- ARGS...   (STDERR_SUBSTRING "": stderr empty)
expect() {
  local rc=$1 out=$2 err=$3; shift 4
  local got_out got_err got_rc
  got_err=$(mktemp)
  got_out=$("$CHOOSE" "$@" 2>"$got_err"); got_rc=$?
  n=$((n + 1))
  local err_ok=1
  if [ -z "$err" ]; then [ -s "$got_err" ] && err_ok=0; else grep -qF -- "$err" "$got_err" || err_ok=0; fi
  if [ "$got_rc" != "$rc" ] || [ "$got_out" != "$out" ] || [ $err_ok -eq 0 ]; then
    echo "FAIL: libjwt-choose.sh $*"
    echo "  want rc=$rc out='$out' stderr~'$err'"
    echo "  got  rc=$got_rc out='$got_out' stderr='$(cat "$got_err")'"
    fail=$((fail + 1))
  fi
  rm -f "$got_err"
}

# An installed libjwt 3.2+ is used, whatever Debian offers.
expect 0 "installed 3.2.0" "" -- --installed 3.2.0 3.3.3-1
expect 0 "installed 3.3.3" "" -- --installed 3.3.3
# Below 3.2 (Debian 12's 1.10) is refused, and the newest source is built.
expect 0 "build 3.3.3-1" "installed libjwt 1.10.2 is below 3.2" -- --installed 1.10.2 3.2.1-1 3.3.3-1
expect 0 "build 3.3.3-1" "below 3.2" -- --installed 3.1.9 3.3.3-1
# An installed unknown major is not used either.
expect 0 "build 3.3.3-1" "major version 4, which tokend does not know" -- --installed 4.0.1 3.3.3-1
# The pinned version gone from unstable: the newest offered instead, said so.
expect 0 "build 3.4.1-2" "pinned libjwt3 3.3.3-1 is not offered (any more)" -- --pinned 3.3.3-1 3.4.0-1 3.4.1-2
# The pin still offered: taken, even when something newer is.
expect 0 "build 3.3.3-1" "" -- --pinned 3.3.3-1 3.3.3-1 3.4.0-1
# Newest by Debian's ordering (revisions, tilde pre-releases, epochs).
expect 0 "build 3.4.0-1" "" -- 3.4.0~rc1-1 3.4.0-1 3.3.10-1
expect 0 "build 3.10.0-1" "" -- 3.9.0-1 3.10.0-1
expect 0 "build 3.3.3-2" "" -- 3.3.3-1 3.3.3-2
# Experimental's new major is skipped while unstable has a 3.x.
expect 0 "build 3.3.3-1" "skipped libjwt3 4.0.0-1" -- 3.3.3-1 4.0.0-1
# Only an unknown major: a clear stop.
expect 1 "" "major version 4 is unknown to this tokend" -- 4.0.0-1
expect 1 "" "major version 4 is unknown" -- --pinned 3.3.3-1 4.0.0-1 4.1.0-1
# Only below 3.2: refused.
expect 1 "" "below 3.2" -- 3.1.0-1 3.0.0-1
expect 1 "" "below 3.2" -- --installed 1.10.2 1.12.0-1
# Nothing at all: a clear stop naming what to do.
expect 1 "" "point PKG_CONFIG_PATH at it" --
expect 1 "" "point PKG_CONFIG_PATH at it" -- --installed 1.10.2
# Garbage from the index is skipped, never taken.
expect 0 "build 3.2.0-1" "is not a Debian version" -- "3.9.0 -1" 3.2.0-1

echo "libjwt_choose: $((n - fail))/$n cases hold"
[ "$fail" -eq 0 ]
