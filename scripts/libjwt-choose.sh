#!/usr/bin/env bash
# Which libjwt tokend builds against: the decision of scripts/install-deps.sh,
# apart from the network so that tests can give it any situation
# (tests/unit/libjwt_choose.sh).
#
#   libjwt-choose.sh [--installed VERSION] [--pinned DEBIAN_VERSION] [CANDIDATE...]
#
# --installed   the version pkg-config reports for an installed libjwt ("" or
#               absent: none found)
# --pinned      a Debian version asked for (TOKEND_LIBJWT_VERSION): taken when
#               offered, otherwise the newest is taken with a warning
# CANDIDATE     the Debian versions of source package libjwt3 that apt's
#               signed indexes offer (unstable and experimental)
#
# Prints one line and exits 0:
#   installed VERSION        use the installed libjwt
#   build DEBIAN_VERSION     build this source version
# or exits 1 with a one-line reason on stderr. Notes (a version skipped, a pin
# gone) go to stderr as "libjwt: ..." lines.
#
# The rules: tokend needs libjwt 3 at 3.2 or later (jwt_builder_*, jwt_checker_*,
# jwks_*); a major version other than 3 has an API this code does not know,
# so it is never taken, however new.
set -euo pipefail

KNOWN_MAJOR=3
MIN_VERSION=3.2

# The upstream part of a Debian version: no epoch, no Debian revision.
upstream() {
  local v=$1
  case $v in *:*) v=${v#*:} ;; esac
  case $v in *-*) v=${v%-*} ;; esac
  printf '%s\n' "$v"
}

# The major version (leading digits), or "" when there are none.
major() {
  local v
  v=$(upstream "$1")
  v=${v%%[!0-9]*}
  printf '%s\n' "$v"
}

# Whether an upstream version is at least MIN_VERSION (Debian's ordering).
at_least_min() {
  dpkg --compare-versions "$(upstream "$1")" ge "$MIN_VERSION"
}

choose() {
  local installed="" pinned=""
  while [ $# -gt 0 ]; do
    case $1 in
      --installed) installed=${2:-}; shift 2 ;;
      --pinned) pinned=${2:-}; shift 2 ;;
      --) shift; break ;;
      -*) echo "libjwt-choose: unknown option $1" >&2; return 2 ;;
      *) break ;;
    esac
  done

  if [ -n "$installed" ]; then
    if [ "$(major "$installed")" = "$KNOWN_MAJOR" ] && at_least_min "$installed"; then
      echo "installed $installed"
      return 0
    fi
    if [ "$(major "$installed")" != "$KNOWN_MAJOR" ] && at_least_min "$installed"; then
      echo "libjwt: the installed libjwt $installed is major version $(major "$installed"), which tokend does not know (it needs 3.x, >= $MIN_VERSION): not used" >&2
    else
      echo "libjwt: the installed libjwt $installed is below $MIN_VERSION (tokend needs 3.x, >= $MIN_VERSION): not used" >&2
    fi
  fi

  local c best="" unknown="" old=""
  for c in "$@"; do
    [ -n "$c" ] || continue
    if ! dpkg --compare-versions "$c" ge 0 2>/dev/null; then
      echo "libjwt: '$c' is not a Debian version: skipped" >&2
      continue
    fi
    if [ "$(major "$c")" != "$KNOWN_MAJOR" ]; then
      if at_least_min "$c"; then unknown="$unknown $c"; else old="$old $c"; fi
      continue
    fi
    if ! at_least_min "$c"; then
      old="$old $c"
      continue
    fi
    if [ -z "$best" ] || dpkg --compare-versions "$c" gt "$best"; then
      best=$c
    fi
  done

  if [ -n "$pinned" ]; then
    for c in "$@"; do
      if [ "$c" = "$pinned" ] && [ "$(major "$c")" = "$KNOWN_MAJOR" ] && at_least_min "$c"; then
        echo "build $pinned"
        return 0
      fi
    done
    if [ -n "$best" ]; then
      echo "libjwt: the pinned libjwt3 $pinned is not offered (any more) or not usable: taking the newest, $best" >&2
    fi
  fi

  if [ -n "$best" ]; then
    [ -z "$unknown" ] || echo "libjwt: skipped libjwt3${unknown}: a major version tokend does not know" >&2
    echo "build $best"
    return 0
  fi
  if [ -n "$unknown" ]; then
    echo "libjwt: Debian offers libjwt3${unknown} only: major version $(for c in $unknown; do major "$c"; done | sort -un | paste -sd, -) is unknown to this tokend, which needs libjwt 3 (>= $MIN_VERSION). Install a libjwt 3.x >= $MIN_VERSION and point PKG_CONFIG_PATH at it (see README, libjwt)" >&2
    return 1
  fi
  if [ -n "$old" ]; then
    echo "libjwt: Debian offers libjwt3${old} only, below $MIN_VERSION: tokend needs libjwt 3 (>= $MIN_VERSION). Install one and point PKG_CONFIG_PATH at it (see README, libjwt)" >&2
    return 1
  fi
  echo "libjwt: no libjwt >= $MIN_VERSION is installed and Debian unstable/experimental offer no libjwt3 source. Install a libjwt 3.x >= $MIN_VERSION and point PKG_CONFIG_PATH at it (see README, libjwt)" >&2
  return 1
}

# Run when executed, define the functions when sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  choose "$@"
fi
