/*
 * migrate.c - apply the embedded SQL migrations.
 */
#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "db.h"
#include "migrations.h"

/* Arbitrary but fixed: the advisory lock key that serialises migrations. */
#define MIGRATE_LOCK_KEY "7170717033"

static void sha256_hex(const char *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

static int exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	int ok = r && tk_db_ok(r);
	if (!ok)
		snprintf(err, errlen, "%s", tk_db_error(c, r));
	PQclear(r);
	return ok ? 0 : -1;
}

/*
 * Rewrite the application role's privileges (sql/006_roles.sql) after every
 * run, so that objects added by any migration are covered. A schema from
 * before version 6 has no such function: nothing to do. 0, or -1 with err.
 */
static int grant_app(PGconn *c, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, "SELECT to_regprocedure('tokend_grant_app()') IS NOT NULL");
	int have = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
	           && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", tk_db_error(c, r));
		PQclear(r);
		return -1;
	}
	PQclear(r);
	if (!have)
		return 0;
	char why[400];
	if (exec_ok(c, "SELECT tokend_grant_app()", why, sizeof(why)) != 0) {
		snprintf(err, errlen, "granting the application role (tokend_app) its privileges: %s", why);
		return -1;
	}
	return 0;
}

int tk_migrate_latest(void)
{
	return tk_migrations_count ? tk_migrations[tk_migrations_count - 1].version : 0;
}

int tk_migrate_current(PGconn *c)
{
	PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM tokend_migrations");
	int v = -1;
	if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = atoi(PQgetvalue(r, 0, 0));
	else if (r && strcmp(tk_db_sqlstate(r), "42P01") == 0)   /* undefined_table */
		v = 0;
	PQclear(r);
	return v;
}

int tk_migrate(PGconn *c, json_t *applied, int *current, char *err, size_t errlen)
{
	int rc = -1;
	*current = 0;
	if (exec_ok(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", err, errlen) != 0)
		return -1;
	if (exec_ok(c, "CREATE TABLE IF NOT EXISTS tokend_migrations ("
	               " version integer PRIMARY KEY, name text NOT NULL,"
	               " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
	            err, errlen) != 0)
		goto out;

	PGresult *r = PQexec(c, "SELECT version, checksum FROM tokend_migrations ORDER BY version");
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", tk_db_error(c, r));
		PQclear(r);
		goto out;
	}
	int rows = PQntuples(r);
	for (int i = 0; i < rows; i++) {
		int v = atoi(PQgetvalue(r, i, 0));
		const tk_migration *m = NULL;
		for (int j = 0; j < tk_migrations_count; j++)
			if (tk_migrations[j].version == v)
				m = &tk_migrations[j];
		if (!m) {
			snprintf(err, errlen, "the database has migration %d, which this tokend does not know: "
			         "it was migrated by a newer version", v);
			PQclear(r);
			goto out;
		}
		char sum[65];
		sha256_hex(m->sql, m->len, sum);
		if (strcmp(sum, PQgetvalue(r, i, 1)) != 0) {
			snprintf(err, errlen, "migration %s was changed after it was applied (checksum mismatch)", m->name);
			PQclear(r);
			goto out;
		}
		if (v > *current)
			*current = v;
	}
	PQclear(r);

	for (int j = 0; j < tk_migrations_count; j++) {
		const tk_migration *m = &tk_migrations[j];
		if (m->version <= *current)
			continue;
		char sum[65], ver[16];
		sha256_hex(m->sql, m->len, sum);
		snprintf(ver, sizeof(ver), "%d", m->version);
		if (exec_ok(c, "BEGIN", err, errlen) != 0)
			goto out;
		char why[400];
		if (exec_ok(c, m->sql, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "migration %s failed: %s", m->name, why);
			PQclear(PQexec(c, "ROLLBACK"));
			goto out;
		}
		const char *params[] = { ver, m->name, sum };
		PGresult *ins = tk_db_exec(c, "INSERT INTO tokend_migrations (version, name, checksum) "
		                              "VALUES ($1, $2, $3)", 3, params);
		if (!tk_db_ok(ins)) {
			snprintf(err, errlen, "recording migration %s: %s", m->name, tk_db_error(c, ins));
			PQclear(ins);
			PQclear(PQexec(c, "ROLLBACK"));
			goto out;
		}
		PQclear(ins);
		if (exec_ok(c, "COMMIT", err, errlen) != 0)
			goto out;
		json_array_append_new(applied, json_string(m->name));
		*current = m->version;
	}
	if (grant_app(c, err, errlen) != 0)
		goto out;
	rc = 0;
out:
	PQclear(PQexec(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
	return rc;
}

int tk_migrate_role_check(PGconn *c, char *err, size_t errlen)
{
	PGresult *r = PQexec(c,
	    "WITH s AS (SELECT relnamespace AS nsp FROM pg_class WHERE oid = to_regclass('api_keys'))"
	    " SELECT current_user, r.rolsuper,"
	    "  (SELECT string_agg(DISTINCT c.relowner::regrole::text, ', ')"
	    "     FROM pg_class c, s WHERE c.relnamespace = s.nsp"
	    "      AND pg_has_role(current_user, c.relowner, 'MEMBER')),"
	    "  (SELECT n.nspowner::regrole::text FROM pg_namespace n, s WHERE n.oid = s.nsp"
	    "      AND pg_has_role(current_user, n.nspowner, 'MEMBER'))"
	    " FROM pg_roles r WHERE r.rolname = current_user");
	int rc = -1;
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		snprintf(err, errlen, "checking the database role: %s", tk_db_error(c, r));
		goto out;
	}
	const char *role = PQgetvalue(r, 0, 0);
	if (strcmp(PQgetvalue(r, 0, 1), "f") != 0) {
		snprintf(err, errlen, "the database role \"%s\" is a superuser", role);
		rc = 1;
	} else if (!PQgetisnull(r, 0, 2)) {
		snprintf(err, errlen, "the database role \"%s\" owns tokend's tables (as %s)", role,
		         PQgetvalue(r, 0, 2));
		rc = 1;
	} else if (!PQgetisnull(r, 0, 3)) {
		snprintf(err, errlen, "the database role \"%s\" owns tokend's schema (as %s)", role,
		         PQgetvalue(r, 0, 3));
		rc = 1;
	} else {
		rc = 0;
	}
out:
	PQclear(r);
	return rc;
}
