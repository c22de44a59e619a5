#!/usr/bin/env bash
# The image's HEALTHCHECK (docker/Dockerfile): GET /healthz over HTTP/1.1 with
# bash's /dev/tcp (the image has no curl); exit 0 on a 200, 1 otherwise.
#
#   TOKEND_HEALTHCHECK_HOST   default 127.0.0.1
#   TOKEND_HEALTHCHECK_PORT   default 8080 (the ops listener's port when
#                             ops_listen_port is set: /healthz answers there only)
#   TOKEND_HEALTHCHECK_PATH   default /healthz (/readyz: the database too)
set -u
host=${TOKEND_HEALTHCHECK_HOST:-127.0.0.1}
port=${TOKEND_HEALTHCHECK_PORT:-8080}
path=${TOKEND_HEALTHCHECK_PATH:-/healthz}
case "$port" in ''|*[!0-9]*) echo "healthcheck: bad port '$port'" >&2; exit 1 ;; esac
exec 3<>"/dev/tcp/$host/$port" || { echo "healthcheck: cannot connect to $host:$port" >&2; exit 1; }
printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
IFS= read -r -t 3 status <&3 || { echo "healthcheck: no answer from $host:$port" >&2; exit 1; }
exec 3<&-
case "$status" in
  "HTTP/1."?" 200 "*) exit 0 ;;
  *) echo "healthcheck: $path answered: ${status%$'\r'}" >&2; exit 1 ;;
esac
