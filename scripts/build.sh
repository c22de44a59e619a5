#!/usr/bin/env bash
# Build tokend. Usage: scripts/build.sh [normal|sanitize|all]   (default: normal)
#   normal   -> build/          (gcc, RelWithDebInfo)
#   sanitize -> build-sanitize/ (clang, ASan + UBSan, -fno-sanitize-recover=all)
# Assumes scripts/install-deps.sh has run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# libjwt: the one PKG_CONFIG_PATH (or the system) gives when it is libjwt 3
# (>= 3.2), else the project-local build of scripts/install-deps.sh.
if ! { v=$(pkg-config --modversion libjwt 2>/dev/null) && "$ROOT/scripts/libjwt-choose.sh" --installed "$v" >/dev/null 2>&1; }; then
  export PKG_CONFIG_PATH="$ROOT/.deps/libjwt/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
fi
JOBS=$(nproc)

build_one() {
  local dir=$1; shift
  cmake -S "$ROOT" -B "$ROOT/$dir" "$@" >/dev/null
  cmake --build "$ROOT/$dir" -j"$JOBS"
}

case "${1:-normal}" in
  normal)   build_one build -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo ;;
  sanitize) build_one build-sanitize -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DTOKEND_SANITIZE=ON ;;
  all)      "$0" normal; "$0" sanitize ;;
  *) echo "usage: $0 [normal|sanitize|all]" >&2; exit 2 ;;
esac
