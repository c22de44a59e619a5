#!/usr/bin/env bash
# Build tokend. Usage: scripts/build.sh [normal|sanitize|all]   (default: normal)
#   normal   -> build/          (gcc, RelWithDebInfo)
#   sanitize -> build-sanitize/ (clang, ASan + UBSan, -fno-sanitize-recover=all)
# Assumes scripts/install-deps.sh has run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PKG_CONFIG_PATH="$ROOT/.deps/libjwt/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
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
