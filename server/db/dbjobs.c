/*
 * dbjobs.c - the statements of each kind of database job and the reading of
 * their answers (see dbjobs.h).
 */
#include "dbjobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tokend/crypto.h>

#include "intern.h"
#include "log.h"

/* The columns of a key lookup (dbjobs.h: parse_key_row reads them by number):
 * 0 account, 1 current secret hash, 2 pepper id, 3 scopes, 4 audiences,
 * 5 subject, 6 lifetime, 7 expiry, 8 why not usable, 9 rate limit,
 * 10 last used, 11 environment, 12 custom claims, 13 previous hash,
 * 14 its end, 15 publishable, 16 allowed origins, 17 status index. Times in
 * seconds by date_part (a double: exact for seconds; extract() makes a
 * numeric, which costs the backend more per row). */
#define KEY_COLUMNS \
	"SELECT k.account_id, coalesce(s.secret_hash, k.secret_hash), k.pepper_id, array_to_string(k.scopes, ' ')," \
	" array_to_string(k.audiences, ' '), k.subject, coalesce(k.token_lifetime, 0)," \
	" coalesce(floor(date_part('epoch', k.expires_at))::bigint, 0)," \
	" CASE WHEN k.deleted_at IS NOT NULL THEN 'key_deleted' WHEN k.revoked_at IS NOT NULL THEN 'key_revoked'" \
	"  WHEN k.disabled_at IS NOT NULL THEN 'key_disabled' WHEN a.disabled_at IS NOT NULL THEN 'account_disabled'" \
	"  ELSE '' END, coalesce(k.rate_limit, 0)," \
	" coalesce(floor(date_part('epoch', k.last_used_at))::bigint, 0)," \
	" k.environment, CASE WHEN k.claims = '{}'::jsonb THEN NULL ELSE k.claims::text END," \
	" s.previous_hash, coalesce(floor(date_part('epoch', s.previous_until))::bigint, 0)," \
	" k.publishable, array_to_string(k.allowed_origins, ' '), k.status_idx"
#define KEY_FROM \
	" FROM api_keys k JOIN accounts a ON a.id = k.account_id LEFT JOIN api_key_secrets s ON s.key_id = k.id"

const tk_dbstmt tk_dbstatements[] = {
	{ "key", 1, KEY_COLUMNS KEY_FROM " WHERE k.id = $1" },
	/* The same columns, and the ID (18), for many keys at once (a batch of
	 * KEY jobs: tk_dbcall_make_keys). Driven by the IDs (unnest), not by
	 * `k.id = ANY($1)`: the prepared statement's generic plan then reads each
	 * key, its account and its rotation row by their primary keys (a nested
	 * loop), where ANY() let the planner hash-join the whole accounts table
	 * for every batch (EXPLAIN ANALYZE, 64 IDs over 1,000 accounts: a seq
	 * scan of all of them per statement, growing with the accounts). */
	{ "keys", 1, KEY_COLUMNS ", k.id FROM unnest($1::text[]) AS q(id) JOIN api_keys k ON k.id = q.id"
	  " JOIN accounts a ON a.id = k.account_id LEFT JOIN api_key_secrets s ON s.key_id = k.id" },
	{ "last_used", 2,
	  "UPDATE api_keys k SET last_used_at = to_timestamp(v.t)"
	  " FROM unnest($1::text[], $2::bigint[]) AS v(id, t)"
	  " WHERE k.id = v.id AND (k.last_used_at IS NULL OR k.last_used_at < to_timestamp(v.t))" },
	{ "token_state", 2, TK_SQL_TOKEN_STATE },
	{ "revoke", 5,
	  "INSERT INTO revoked_tokens (jti, key_id, account_id, expires_at)"
	  " SELECT $1, $2, $3, to_timestamp($4) FROM (SELECT set_config('tokend.actor', $5, true)) s"
	  " ON CONFLICT (jti) DO NOTHING" },
	{ "purge", 0, "DELETE FROM revoked_tokens WHERE expires_at < now() - interval '1 minute'" },
	{ "scopes", 0, "SELECT coalesce(string_agg(name, ' ' ORDER BY name), '') FROM scopes" },
};
const size_t tk_dbstatements_count = sizeof(tk_dbstatements) / sizeof(tk_dbstatements[0]);

static int id_order(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* Two array literals for last_used: {id,...} and {time,...}. IDs are [0-9A-Za-z_].
 * Each sized to what it holds (a flush of 4,096 marks: about 130 KB and
 * 90 KB). In ID order: the UPDATE, driven by the array, then locks the rows
 * in that order whichever worker sends it, so two workers' batches over the
 * same keys wait for each other at worst, never deadlock (in hash order they
 * did, each statement then held up to deadlock_timeout, past db_timeout). */
static int last_used_params(const tk_dbjob *j, tk_dbcall *c)
{
	size_t icap = 3, tcap = j->n * 21 + 3, a = 0, b = 0;   /* a time: at most 20 characters and a comma */
	for (size_t i = 0; i < j->n; i++)
		icap += strlen(j->ids[i]) + 1;
	char *ids = malloc(icap), *times = malloc(tcap);
	const char **order = malloc((j->n ? j->n : 1) * sizeof(*order));

	if (!ids || !times || !order) {
		free(ids);
		free(times);
		free(order);
		return -1;
	}
	for (size_t i = 0; i < j->n; i++)
		order[i] = j->ids[i];
	qsort(order, j->n, sizeof(*order), id_order);
	ids[a++] = '{';
	times[b++] = '{';
	for (size_t k = 0; k < j->n; k++) {
		size_t i = (size_t)(order[k] - j->ids[0]) / sizeof(j->ids[0]);   /* its mark */
		a += (size_t)snprintf(ids + a, icap - a, "%s%s", k ? "," : "", j->ids[i]);
		b += (size_t)snprintf(times + b, tcap - b, "%s%lld", k ? "," : "", (long long)j->times[i]);
	}
	free(order);
	ids[a++] = '}';
	ids[a] = '\0';
	times[b++] = '}';
	times[b] = '\0';
	c->owned[0] = ids;
	c->owned[1] = times;
	c->params[0] = ids;
	c->params[1] = times;
	c->nparams = 2;
	return 0;
}

int tk_dbcall_make(const tk_dbjob *j, tk_dbcall *c)
{
	memset(c, 0, sizeof(*c));
	switch (j->kind) {
	case TK_DBJOB_KEY:
		c->stmt = "key";
		c->nparams = 1;
		c->params[0] = j->key_id;
		return 0;
	case TK_DBJOB_LAST_USED:
		c->stmt = "last_used";
		return last_used_params(j, c);
	case TK_DBJOB_SCOPES:
		c->stmt = "scopes";
		return 0;
	case TK_DBJOB_TOKEN_STATE:
		c->stmt = "token_state";
		c->nparams = 2;
		c->params[0] = j->key_id;
		c->params[1] = j->jti;
		return 0;
	case TK_DBJOB_REVOKE:
		snprintf(c->num, sizeof(c->num), "%lld", (long long)j->exp);
		c->stmt = "revoke";
		c->nparams = 5;
		c->params[0] = j->jti;
		c->params[1] = j->key_id;
		c->params[2] = j->account;
		c->params[3] = c->num;
		c->params[4] = j->actor;
		return 0;
	case TK_DBJOB_PURGE:
		c->stmt = "purge";
		return 0;
	case TK_DBJOB_QUERY:
		if (j->nparams < 0 || j->nparams > TK_DBJOB_MAX_PARAMS)
			return -1;             /* never send a statement short of its parameters */
		c->sql = j->sql;
		c->nparams = j->nparams;
		for (int i = 0; i < j->nparams; i++)
			c->params[i] = j->params[i];
		c->no_retry = j->no_retry;
		return 0;
	}
	return -1;
}

int tk_dbcall_make_keys(tk_dbjob *const *jobs, size_t n, tk_dbcall *c)
{
	/* An array literal {id,...}: key IDs are [0-9A-Za-z_] (tk_key_id_check
	 * before any job is made), nothing to quote; one that is not is never sent. */
	size_t cap = n * (TK_KEY_ID_MAX + 1) + 3, a = 0;
	char *ids;

	memset(c, 0, sizeof(*c));
	if (n == 0 || !(ids = malloc(cap)))
		return -1;
	ids[a++] = '{';
	for (size_t i = 0; i < n; i++) {
		const char *id = jobs[i]->key_id;
		if (!*id || strspn(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_") != strlen(id)) {
			free(ids);
			return -1;
		}
		a += (size_t)snprintf(ids + a, cap - a, "%s%s", i ? "," : "", id);
	}
	ids[a++] = '}';
	ids[a] = '\0';
	c->stmt = "keys";
	c->nparams = 1;
	c->owned[0] = ids;
	c->params[0] = ids;
	return 0;
}

void tk_dbcall_release(tk_dbcall *c)
{
	free(c->owned[0]);
	free(c->owned[1]);
	c->owned[0] = c->owned[1] = NULL;
}

/* Fill `k` from row `row`. -1 when a copy could not be made (out of memory):
 * the record is incomplete and must not be used or cached. */
static int parse_key_row(tk_apikey *k, PGresult *r, int row)
{
	k->found = 1;
	size_t hlen = 0;
	unsigned char *h = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, 1), &hlen);
	int hash_ok = h && hlen == TK_HASH_LEN;
	if (hash_ok)
		memcpy(k->hash, h, TK_HASH_LEN);
	if (h) {
		tk_wipe(h, hlen);
		PQfreemem(h);
	}
	k->pepper_id = (int16_t)atoi(PQgetvalue(r, row, 2));
	/* A publishable key (sql/010) has no secret: its hash stays unset and
	 * unused (keyauth.c never accepts it with a secret); its allowed origins
	 * are required. */
	k->publishable = strcmp(PQgetvalue(r, row, 15), "t") == 0;
	/* The previous secret of a rotation, until its overlap ends; without one
	 * (or unreadable) prev_until stays 0 and only the current secret works. */
	int copies_ok = 1;           /* an allocation failure never drops a value */
	if (!PQgetisnull(r, row, 13)) {
		size_t plen = 0;
		unsigned char *ph = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, 13), &plen);
		/* (the holder of the previous secret would be refused: fail closed) */
		if (ph && plen == TK_HASH_LEN &&
		    tk_apikey_set_prev(k, ph, strtoll(PQgetvalue(r, row, 14), NULL, 10)) != 0)
			copies_ok = 0;
		if (ph) {
			tk_wipe(ph, plen);
			PQfreemem(ph);
		}
	}
	/* Account, subject, claims, scopes and audiences are interned: shared
	 * with every other cached key of the same value. */
	int vals = tk_apikey_set_values(k, PQgetvalue(r, row, 0),
	                                PQgetisnull(r, row, 5) ? NULL : PQgetvalue(r, row, 5),
	                                PQgetisnull(r, row, 12) ? NULL : PQgetvalue(r, row, 12),
	                                PQgetvalue(r, row, 3), PQgetvalue(r, row, 4));
	if (vals < 0)
		copies_ok = 0;
	int scopes_ok = vals == 0;
	/* Environment (sql/007): an unknown environment or an unreadable claim
	 * set makes the key unusable, never a token without them. */
	k->env = tk_apikey_env_code(PQgetvalue(r, row, 11));
	int model_ok = k->env != TK_ENV_UNKNOWN;
	if (k->publishable) {
		hash_ok = !PQgetisnull(r, row, 16) && *PQgetvalue(r, row, 16);   /* no origin: unusable */
		if (tk_apikey_set_origins(k, PQgetvalue(r, row, 16)) != 0)
			copies_ok = 0;
	}
	/* The key's index in the status list (sql/012, NOT NULL): without a
	 * readable one the key is unusable, never a token without its status. */
	k->status_idx = -1;
	if (PQnfields(r) > 17 && !PQgetisnull(r, row, 17)) {
		char *end = NULL;
		long long idx = strtoll(PQgetvalue(r, row, 17), &end, 10);
		if (end && *end == '\0' && idx >= 0)
			k->status_idx = idx;
	}
	if (k->status_idx < 0)
		model_ok = 0;
	k->lifetime = atoi(PQgetvalue(r, row, 6));
	k->rate_limit = atoi(PQgetvalue(r, row, 9));
	k->expires_at = strtoll(PQgetvalue(r, row, 7), NULL, 10);
	atomic_store(&k->last_used_at, (int64_t)strtoll(PQgetvalue(r, row, 10), NULL, 10));
	/* "" usable; a reason the database gives (an unknown one: key_not_usable) */
	k->reason = tk_apikey_reason_code(PQgetvalue(r, row, 8));
	if (k->reason == TK_UNUSABLE_NONE && !(hash_ok && scopes_ok && model_ok))
		k->reason = TK_UNUSABLE_CORRUPT;
	k->usable = k->reason == TK_UNUSABLE_NONE;
	return copies_ok ? 0 : -1;
}

/* The job's kind, as db.query_failed and db.job_expired name it. */
const char *tk_dbjob_kind_name(tk_dbjob_kind k)
{
	switch (k) {
	case TK_DBJOB_KEY: return "key";
	case TK_DBJOB_LAST_USED: return "last_used";
	case TK_DBJOB_SCOPES: return "scopes";
	case TK_DBJOB_TOKEN_STATE: return "token_state";
	case TK_DBJOB_REVOKE: return "revoke";
	case TK_DBJOB_PURGE: return "purge";
	case TK_DBJOB_QUERY: return "query";
	}
	return "?";
}

void tk_dbjob_finish(tk_dbjob *j, PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);

	j->status = TK_DBJOB_FAILED;
	switch (j->kind) {
	case TK_DBJOB_QUERY:
		j->result = r;             /* the owner reads the result's own status */
		j->status = TK_DBJOB_OK;
		return;
	case TK_DBJOB_KEY:
		if (st == PGRES_TUPLES_OK) {
			tk_apikey *k = tk_apikey_new(j->key_id);
			if (k) {
				if (PQntuples(r) == 1 && parse_key_row(k, r, 0) != 0) {
					tk_apikey_release(k);   /* fails closed: 503, nothing cached */
					break;
				}
				j->key = k;
				j->status = TK_DBJOB_OK;
			}
		}
		break;
	case TK_DBJOB_TOKEN_STATE:
		if (st == PGRES_TUPLES_OK && PQntuples(r) == 1) {
			j->key_active = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
			j->jti_revoked = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
			j->status = TK_DBJOB_OK;
		}
		break;
	case TK_DBJOB_SCOPES:
		if (st == PGRES_TUPLES_OK && PQntuples(r) == 1) {
			j->text = strdup(PQgetvalue(r, 0, 0));
			if (j->text)
				j->status = TK_DBJOB_OK;
		}
		break;
	case TK_DBJOB_REVOKE:
	case TK_DBJOB_PURGE:
	case TK_DBJOB_LAST_USED:
		if (st == PGRES_COMMAND_OK)
			j->status = TK_DBJOB_OK;
		break;
	}
	if (j->status != TK_DBJOB_OK && st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
		tk_log(TK_LOG_WARNING, "db.query_failed", "job", tk_dbjob_kind_name(j->kind), "detail",
		       PQresultErrorMessage(r), NULL);
	PQclear(r);
}

void tk_dbjob_finish_keys(tk_dbjob *const *jobs, size_t n, PGresult *r)
{
	int rows = PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) : -1, next = 0;

	for (size_t i = 0; i < n; i++) {
		tk_dbjob *j = jobs[i];
		j->status = TK_DBJOB_FAILED;
		if (rows < 0)
			continue;
		/* The same key twice in one batch: one record, shared (single flight). */
		for (size_t e = 0; e < i; e++) {
			if (jobs[e]->status == TK_DBJOB_OK && strcmp(jobs[e]->key_id, j->key_id) == 0) {
				j->key = tk_apikey_ref(jobs[e]->key);
				j->status = TK_DBJOB_OK;
				break;
			}
		}
		if (j->status == TK_DBJOB_OK)
			continue;
		/* Rows come in the IDs' order in practice (unnest drives the
		 * join): the next row is tried first, then every row (the order is
		 * not promised, and an unknown key has none). */
		int row = -1;
		if (next < rows && strcmp(PQgetvalue(r, next, 18), j->key_id) == 0)
			row = next;
		for (int x = 0; x < rows && row < 0; x++)
			if (strcmp(PQgetvalue(r, x, 18), j->key_id) == 0)
				row = x;
		if (row >= 0)
			next = row + 1;
		tk_apikey *k = tk_apikey_new(j->key_id);
		if (!k)
			continue;
		if (row >= 0 && parse_key_row(k, r, row) != 0) {
			tk_apikey_release(k);   /* fails closed: 503, nothing cached */
			continue;
		}
		j->key = k;                 /* not found: a negative record, as a single lookup */
		j->status = TK_DBJOB_OK;
	}
	if (rows < 0)
		tk_log(TK_LOG_WARNING, "db.query_failed", "job", "key", "detail", PQresultErrorMessage(r), NULL);
	PQclear(r);
}
