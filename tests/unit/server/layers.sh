#!/usr/bin/env bash
# The server's layers call only downward: every tk_ symbol a layer's static
# library uses must be defined in that layer, a layer below it, or libtokend.
# (An upward #include already fails to compile: each layer exports only its
# own folder. This catches a call made through a hand-written prototype.)
#   layers.sh BUILD_DIR
set -euo pipefail
B=$1
order=(core state db http oauth ops admin console cli)
declare -A below=(
  [core]="" [state]="core" [db]="core state" [http]="core state db"
  [oauth]="core state db http" [ops]="core state db http" [admin]="core state db http" [console]="core state db http"
  [cli]="core state db")
defined() { nm --defined-only "$@" 2>/dev/null | awk '$2 ~ /[TDBR]/ {print $3}' | grep '^tk_' || true; }
lib=$(ls "$B"/lib/libtokend.so* | head -1)
fail=0
for l in "${order[@]}"; do
  a="$B/server/libtokend_$l.a"
  [ -f "$a" ] || { echo "missing $a"; exit 1; }
  ok=$( { defined "$a"; defined -D "$lib"; for d in ${below[$l]}; do defined "$B/server/libtokend_$d.a"; done; } | sort -u)
  for s in $(nm --undefined-only "$a" | awk '{print $2}' | grep '^tk_' | sort -u); do
    if ! grep -qx "$s" <<<"$ok"; then
      echo "layer $l calls $s, defined in no layer below it"
      fail=1
    fi
  done
done
[ $fail -eq 0 ] && echo "layers: every call goes downward (${order[*]})"
exit $fail
