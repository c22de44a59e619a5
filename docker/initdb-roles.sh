#!/usr/bin/env bash
# Run once by the postgres image when it initialises an empty data directory
# (mounted in /docker-entrypoint-initdb.d/, see compose.yaml), as its superuser:
# the same scripts/db-roles.sql as scripts/pg.sh and the quickstart. Makes
# tokend_owner (owns the database $POSTGRES_DB, runs `tokend migrate`),
# tokend_app (the privileges, granted by the migrations) and the login role
# tokend (member of tokend_app, what `tokend serve` connects as), with the
# passwords of the secrets tokend_owner_password and tokend_app_password.
# The superuser (postgres) is used for nothing else.
set -euo pipefail

owner_pw=${TOKEND_OWNER_PASSWORD_FILE:-/run/secrets/tokend_owner_password}
app_pw=${TOKEND_APP_PASSWORD_FILE:-/run/secrets/tokend_app_password}
for f in "$owner_pw" "$app_pw"; do
  [ -s "$f" ] || { echo "initdb-roles: $f is missing or empty (see docker/README.md)" >&2; exit 1; }
done

TOKEND_OWNER_PASSWORD_FILE=$owner_pw TOKEND_APP_PASSWORD_FILE=$app_pw \
  psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v dbname="${POSTGRES_DB:-tokend}" -v app_user="${TOKEND_APP_USER:-tokend}" \
    -f /opt/tokend/db-roles.sql
echo "initdb-roles: roles tokend_owner, tokend_app and ${TOKEND_APP_USER:-tokend} ready" >&2
