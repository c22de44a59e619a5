/*
 * cli_key_local.c - the local backend of `tokend key ...` (cli_key.h):
 * PostgreSQL, as the operator.
 *
 * Every change calls the same SQL function the admin API calls
 * (tokend_admin_create_key, tokend_admin_key_action,
 * tokend_admin_set_rate_limit) with p_operator true and no account (every
 * account): the key-state rules (what a revoked, deleted or recently used key
 * allows) live only in SQL. Reads use tokend_key_json, the admin API's key
 * object. The actor in the audit log is the session's tokend.actor, set by
 * cli_db() from the OS user and host.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tokend/crypto.h>
#include <tokend/keyfmt.h>
#include <tokend/timefmt.h>

#include "cli.h"
#include "cli_key.h"
#include "db.h"
#include "keylist.h"

/* A refusal from the database: its HINT names the API error. */
static int db_refusal(PGresult *r, tk_key_refusal *ref)
{
	cli_key_refuse(ref, tk_db_hint(r), "%s", tk_db_error(cli.db, r));
	PQclear(r);
	return CLI_REFUSED;
}

/*
 * Run `sql` that yields one row of one JSON text column. 0 with *out set; 1
 * with `ref` filled when the database refused with a HINT (a rule of the
 * admin functions); any other failure exits 1 with the database's message.
 */
static int json_row(const char *sql, int n, const char *const *p, json_t **out, tk_key_refusal *ref)
{
	PGresult *r = tk_db_exec(cli_db(), sql, n, p);
	if (!tk_db_ok(r)) {
		if (*tk_db_hint(r))
			return db_refusal(r, ref);
		char msg[600];
		snprintf(msg, sizeof(msg), "%s", tk_db_error(cli.db, r));
		PQclear(r);
		cli_fail(CLI_REFUSED, "%s", msg);
	}
	if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
		PQclear(r);
		return cli_key_refuse(ref, "not_found", "not found");
	}
	*out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	PQclear(r);
	if (!*out)
		cli_fail(CLI_REFUSED, "unreadable answer from the database");
	return 0;
}

static void local_open(const tk_key_request *rq)
{
	(void)rq;
	cli_db();   /* connect and check the schema first: exits 1 with the reason */
}

static void local_close(void)
{
}

/* The secret hasher under the configured pepper (exits 1 without one). */
static tk_hasher *local_hasher(void)
{
	unsigned char pepper[TK_PEPPER_MAX];
	size_t pepper_len = 0;
	char err[600];
	if (tk_config_pepper(cli_config(), pepper, &pepper_len, err, sizeof(err)) != 0)
		cli_fail(CLI_REFUSED, "%s", err);
	/* A key hashed under another pepper than the server's could never be
	 * used: the database's check value must match (stored if none is). */
	cli_check_pepper(cli_db(), pepper, pepper_len);
	tk_hasher *hasher = tk_hasher_new(pepper, pepper_len);
	tk_wipe(pepper, sizeof(pepper));
	if (!hasher)
		cli_fail(CLI_REFUSED, "cannot set up secret hashing");
	return hasher;
}

static int local_create(const tk_key_request *rq, json_t **key, char secret[TK_SECRET_MAX + 1],
                        tk_key_refusal *ref)
{
	tk_config *cfg = cli_config();
	char lifetime_text[24] = "", rate_text[16] = "";
	if (rq->lifetime_arg) {
		if (rq->lifetime > cfg->token_lifetime_max) {
			char max[32];
			tk_duration_format(cfg->token_lifetime_max, max);
			cli_fail(CLI_REFUSED, "--token-lifetime %s is above the server maximum of %s "
			         "(token_lifetime_max)", rq->lifetime_arg, max);
		}
		snprintf(lifetime_text, sizeof(lifetime_text), "%lld", (long long)rq->lifetime);
	}
	if (rq->rate_limit)
		snprintf(rate_text, sizeof(rate_text), "%d", rq->rate_limit);

	/* The pepper is needed before anything is generated. */
	tk_hasher *hasher = local_hasher();

	/* Arrays as JSON text: the server converts them. */
	char *scope_arr = json_dumps(rq->scopes, JSON_COMPACT);
	char *aud_arr = json_dumps(rq->audiences, JSON_COMPACT);
	char *claims = rq->claims ? json_dumps(rq->claims, JSON_COMPACT) : NULL;
	char *origins = rq->publishable ? json_dumps(rq->origins, JSON_COMPACT) : NULL;
	if (!scope_arr || !aud_arr || (rq->claims && !claims) || (rq->publishable && !origins)) {
		free(scope_arr);
		free(aud_arr);
		free(claims);
		free(origins);
		tk_hasher_free(hasher);
		cli_fail(CLI_REFUSED, "out of memory: no key was created");
	}

	PGresult *r = NULL;
	char key_id[TK_KEY_ID_MAX + 1], hint[TK_HINT_LEN + 1];
	unsigned char hash[TK_HASH_LEN];
	char hash_hex[2 * TK_HASH_LEN + 3];
	const char *fail = NULL;
	for (int attempt = 0; attempt < 3; attempt++) {
		int test = rq->environment && strcmp(rq->environment, "test") == 0;
		const char *id_prefix = rq->publishable
		                        ? (test ? cfg->key_id_prefix_publishable_test : cfg->key_id_prefix_publishable)
		                        : (test ? cfg->key_id_prefix_test : cfg->key_id_prefix_live);
		if (tk_key_id_generate_prefixed(id_prefix, key_id) != TK_KEYFMT_OK) {
			fail = "the random number generator failed: no key was created";
			break;
		}
		if (rq->publishable) {
			secret[0] = '\0';   /* no secret: the key ID is the credential */
		} else {
			if (tk_secret_generate_prefixed(cfg->secret_prefix, secret) != TK_KEYFMT_OK) {
				fail = "the random number generator failed: no key was created";
				break;
			}
			if (tk_hasher_hash(hasher, secret, strlen(secret), hash) != 0) {
				fail = "hashing the secret failed: no key was created";
				break;
			}
			tk_secret_hint(secret, hint);
			hash_hex[0] = '\\';
			hash_hex[1] = 'x';
			for (int j = 0; j < TK_HASH_LEN; j++)
				snprintf(hash_hex + 2 + 2 * j, 3, "%02x", hash[j]);
		}
		/* The same database function as the admin API, as the operator
		 * (no caller scopes or expiry to bound it): the rules live once. */
		const char *p[] = { key_id, rq->account, rq->name, rq->publishable ? NULL : hash_hex,
		                    rq->publishable ? NULL : hint, scope_arr, aud_arr,
		                    rq->subject, rq->expires_at[0] ? rq->expires_at : NULL,
		                    lifetime_text[0] ? lifetime_text : NULL, rate_text[0] ? rate_text : NULL,
		                    rq->role, rq->member, rq->environment, claims, rq->publishable ? "t" : "f", origins };
		r = tk_db_exec(cli_db(),
			"SELECT (tokend_admin_create_key(tokend_actor(), NULL, $2, $1, $3, $4::bytea, $5,"
			"  ARRAY(SELECT jsonb_array_elements_text($6::jsonb)),"
			"  ARRAY(SELECT jsonb_array_elements_text($7::jsonb)), $8, $9::timestamptz, $10::integer,"
			"  NULL, NULL, $11::integer, true, NULL, NULL, $12, $13, $14, $15::jsonb, $16::boolean,"
			"  CASE WHEN $17::jsonb IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text($17::jsonb)) END)"
			"  -> 'key')::text", 17, p);
		tk_wipe(hash_hex, sizeof(hash_hex));
		tk_wipe(hash, sizeof(hash));
		if (tk_db_ok(r) || strcmp(tk_db_sqlstate(r), "23505") != 0)   /* retry only an ID collision */
			break;
		PQclear(r);
		r = NULL;
	}
	tk_hasher_free(hasher);
	free(scope_arr);
	free(aud_arr);
	free(claims);
	free(origins);
	if (fail || !r || !tk_db_ok(r)) {
		tk_wipe(secret, TK_SECRET_MAX + 1);
		secret[0] = '\0';
		if (fail)
			cli_fail(CLI_REFUSED, "%s", fail);
		if (!r)
			return cli_key_refuse(ref, "conflict", "key ID collision: no key was created");
		return db_refusal(r, ref);
	}
	*key = PQntuples(r) == 1 ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
	PQclear(r);
	if (!*key) {
		/* Made, but unreadable: say so, and never lose the secret's only showing. */
		fprintf(stderr, "tokend: the key %s was created but its record could not be read back\n", key_id);
		*key = json_pack("{s:s}", "client_id", key_id);
	}
	return 0;
}

static int local_list(const tk_key_request *rq, json_t **keys, tk_key_refusal *ref)
{
	if (rq->account) {
		const char *p[] = { rq->account };
		PGresult *a = cli_exec("SELECT 1 FROM accounts WHERE id = $1", 1, p);
		int found = PQntuples(a) == 1;
		PQclear(a);
		if (!found)
			return cli_key_refuse(ref, "not_found", "no account '%s'", rq->account);
	}
	/* $1 the account, then the filters (db/keylist.c: the admin API's). */
	char sql[3072], fparams[TK_KEYLIST_FILTERS_MAX][TK_KEYLIST_VALUE_MAX];
	const char *p[1 + TK_KEYLIST_FILTERS_MAX] = { rq->account }, *bad, *why;
	const tk_keysort *sort = rq->sort ? tk_keysort_find(rq->sort) : NULL;
	const char *dir = rq->desc ? "DESC" : "ASC";
	char order[512];
	if (sort)
		snprintf(order, sizeof(order), "%s %s, k.id %s", sort->sql, dir, dir);
	else
		snprintf(order, sizeof(order), "k.account_id, k.created_at, k.id");
	snprintf(sql, sizeof(sql), "FROM api_keys k WHERE k.deleted_at IS NULL AND ($1::text IS NULL OR k.account_id = $1)");
	int nf = tk_keylist_where(rq->filters, 2, sql, sizeof(sql), fparams, p + 1, &bad, &why);
	if (nf < 0)
		cli_fail(CLI_USAGE, "--%s: %s", bad, why);
	char full[4096];
	snprintf(full, sizeof(full), "SELECT coalesce(jsonb_agg(tokend_key_json(k) ORDER BY %s), '[]')::text %s", order, sql);
	return json_row(full, 1 + nf, p, keys, ref);
}

static int local_show(const tk_key_request *rq, json_t **key, tk_key_refusal *ref)
{
	const char *p[] = { rq->id };
	return json_row("SELECT tokend_key_json(k)::text FROM api_keys k WHERE k.id = $1 AND k.deleted_at IS NULL",
	                1, p, key, ref);
}

/* tokend_admin_key_action as the operator: rename, disable, enable, revoke, delete. */
static int key_action(const char *action, const char *arg, int confirm, const tk_key_request *rq, json_t **key,
                      tk_key_refusal *ref)
{
	const char *p[] = { rq->id, action, arg, confirm ? "t" : "f" };
	return json_row("SELECT tokend_admin_key_action(tokend_actor(), NULL, NULL, $1, $2, $3, $4::boolean, true)::text",
	                4, p, key, ref);
}

static int local_rename(const tk_key_request *rq, json_t **key, tk_key_refusal *ref)
{
	return key_action("rename", rq->name, 0, rq, key, ref);
}

static int local_disable(const tk_key_request *rq, json_t **key, tk_key_refusal *ref)
{
	return key_action("disable", NULL, 0, rq, key, ref);
}

static int local_enable(const tk_key_request *rq, json_t **key, tk_key_refusal *ref)
{
	return key_action("enable", NULL, 0, rq, key, ref);
}

static int local_revoke(const tk_key_request *rq, json_t **key, tk_key_refusal *ref)
{
	return key_action("revoke", rq->reason, 0, rq, key, ref);
}

static int local_delete(const tk_key_request *rq, json_t **key, tk_key_refusal *ref)
{
	return key_action("delete", NULL, rq->force, rq, key, ref);
}

static int local_set_rate_limit(const tk_key_request *rq, json_t **key, tk_key_refusal *ref)
{
	char text[16];
	snprintf(text, sizeof(text), "%d", rq->rate_limit);
	const char *p[] = { rq->id, rq->rate_limit ? text : NULL };
	return json_row("SELECT tokend_admin_set_rate_limit(tokend_actor(), NULL, NULL, $1, $2::integer, true)::text",
	                2, p, key, ref);
}

/* tokend_admin_rotate_secret as the operator, with a secret made here. */
static int local_rotate_secret(const tk_key_request *rq, json_t **key, char secret[TK_SECRET_MAX + 1],
                               tk_key_refusal *ref)
{
	tk_hasher *hasher = local_hasher();
	unsigned char hash[TK_HASH_LEN];
	char hash_hex[2 * TK_HASH_LEN + 3], hint[TK_HINT_LEN + 1], overlap[24];
	int ok = tk_secret_generate_prefixed(cli_config()->secret_prefix, secret) == TK_KEYFMT_OK &&
	         tk_hasher_hash(hasher, secret, strlen(secret), hash) == 0;
	tk_hasher_free(hasher);
	if (!ok) {
		tk_wipe(secret, TK_SECRET_MAX + 1);
		cli_fail(CLI_REFUSED, "could not generate a secret: nothing changed");
	}
	tk_secret_hint(secret, hint);
	hash_hex[0] = '\\';
	hash_hex[1] = 'x';
	for (int j = 0; j < TK_HASH_LEN; j++)
		snprintf(hash_hex + 2 + 2 * j, 3, "%02x", hash[j]);
	tk_wipe(hash, sizeof(hash));
	snprintf(overlap, sizeof(overlap), "%lld", (long long)rq->overlap);
	const char *p[] = { rq->id, hash_hex, hint, overlap };
	int rc = json_row("SELECT tokend_admin_rotate_secret(tokend_actor(), NULL, NULL, $1, $2::bytea, $3, $4::integer,"
	                  " true)::text", 4, p, key, ref);
	tk_wipe(hash_hex, sizeof(hash_hex));
	if (rc != 0)
		tk_wipe(secret, TK_SECRET_MAX + 1);
	return rc;
}

const tk_keys_backend tk_keys_local = {
	.name = "local",
	.remote_options = 0,
	.account_required = 1,
	.open = local_open,
	.close = local_close,
	.create = local_create,
	.list = local_list,
	.show = local_show,
	.rename = local_rename,
	.set_rate_limit = local_set_rate_limit,
	.disable = local_disable,
	.enable = local_enable,
	.revoke = local_revoke,
	.delete_key = local_delete,
	.rotate_secret = local_rotate_secret,
};
