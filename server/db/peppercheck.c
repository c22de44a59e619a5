/*
 * peppercheck.c - the pepper's check value in the database.
 */
#include "peppercheck.h"

#include <stdio.h>
#include <string.h>

#include "db.h"

int tk_pepper_check_value(const unsigned char *pepper, size_t len, unsigned char out[TK_HASH_LEN])
{
	tk_hasher *h = tk_hasher_new(pepper, len);
	int rc = -1;
	if (!h) {
		memset(out, 0, TK_HASH_LEN);
		return -1;
	}
	rc = tk_hasher_hash(h, TK_PEPPER_LABEL, strlen(TK_PEPPER_LABEL), out);
	tk_hasher_free(h);
	return rc;
}

static void to_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* 0 and out filled, or -1: `hex` is not 2 * TK_HASH_LEN lowercase hex digits. */
static int from_hex(const char *hex, unsigned char out[TK_HASH_LEN])
{
	if (strlen(hex) != 2 * TK_HASH_LEN)
		return -1;
	for (size_t i = 0; i < TK_HASH_LEN; i++) {
		int v = 0;
		for (int k = 0; k < 2; k++) {
			char ch = hex[2 * i + (size_t)k];
			int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
			if (d < 0)
				return -1;
			v = v * 16 + d;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

tk_pepper_result tk_pepper_check(PGconn *c, const unsigned char value[TK_HASH_LEN], char *err, size_t errlen)
{
	char hex[2 * TK_HASH_LEN + 1];
	to_hex(value, TK_HASH_LEN, hex);
	const char *params[] = { hex };
	tk_pepper_result res = TK_PEPPER_ERROR;
	/* One statement: the insert when none is stored, then what is stored now.
	 * A first contact racing another (fifty `key create` on a new database)
	 * whose insert waited for the other's commit gets no row: its insert does
	 * nothing, and its read's snapshot was taken before that commit. The
	 * same statement again, with a new snapshot, reads the other's value. */
	PGresult *r = NULL;
	for (int tries = 0; tries < 3; tries++) {
		PQclear(r);
		r = tk_db_exec(c,
		    "WITH ins AS (INSERT INTO pepper_check (check_value) VALUES ($1)"
		    "             ON CONFLICT (id) DO NOTHING RETURNING check_value)"
		    " SELECT check_value, true FROM ins"
		    " UNION ALL SELECT check_value, false FROM pepper_check WHERE NOT EXISTS (SELECT 1 FROM ins)",
		    1, params);
		if (!tk_db_ok(r) || PQntuples(r) != 0)
			break;
	}
	if (!tk_db_ok(r)) {
		if (strcmp(tk_db_sqlstate(r), "42P01") == 0)
			snprintf(err, errlen, "the database has no pepper check (schema older than version 9): "
			         "run `tokend migrate`");
		else
			snprintf(err, errlen, "checking the pepper against the database: %s", tk_db_error(c, r));
		goto out;
	}
	unsigned char stored[TK_HASH_LEN];
	if (PQntuples(r) != 1 || from_hex(PQgetvalue(r, 0, 0), stored) != 0) {
		snprintf(err, errlen, "checking the pepper against the database: no readable check value");
		goto out;
	}
	if (!tk_digest_equal(stored, value)) {
		snprintf(err, errlen, "the pepper does not match the one this database's keys were made with "
		         "(its check value in table pepper_check differs): every client would be refused. "
		         "Configure the pepper this database was set up with (pepper_file or TOKEND_PEPPER)");
		res = TK_PEPPER_MISMATCH;
		goto out;
	}
	res = strcmp(PQgetvalue(r, 0, 1), "t") == 0 ? TK_PEPPER_WRITTEN : TK_PEPPER_MATCH;
out:
	PQclear(r);
	return res;
}
