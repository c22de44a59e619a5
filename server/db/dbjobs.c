/*
 * dbjobs.c - the statements of each kind of database job and the reading of
 * their answers (see dbjobs.h).
 */
#include "dbjobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tokend/crypto.h>

#include "log.h"

const tk_dbstmt tk_dbstatements[] = {
	{ "key", 1,
	  "SELECT k.account_id, coalesce(s.secret_hash, k.secret_hash), k.pepper_id, array_to_string(k.scopes, ' '),"
	  " array_to_string(k.audiences, ' '), k.subject, coalesce(k.token_lifetime, 0),"
	  " coalesce(floor(extract(epoch FROM k.expires_at))::bigint, 0),"
	  " CASE WHEN k.deleted_at IS NOT NULL THEN 'key_deleted' WHEN k.revoked_at IS NOT NULL THEN 'key_revoked'"
	  "  WHEN k.disabled_at IS NOT NULL THEN 'key_disabled' WHEN a.disabled_at IS NOT NULL THEN 'account_disabled'"
	  "  ELSE '' END, coalesce(k.rate_limit, 0),"
	  " coalesce(floor(extract(epoch FROM k.last_used_at))::bigint, 0),"
	  " k.environment, CASE WHEN k.claims = '{}'::jsonb THEN NULL ELSE k.claims::text END,"
	  " s.previous_hash, coalesce(floor(extract(epoch FROM s.previous_until))::bigint, 0),"
	  " k.status_idx"
	  " FROM api_keys k JOIN accounts a ON a.id = k.account_id"
	  " LEFT JOIN api_key_secrets s ON s.key_id = k.id WHERE k.id = $1" },
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

/* Two array literals for last_used: {id,...} and {time,...}. IDs are [0-9A-Za-z_]. */
static int last_used_params(const tk_dbjob *j, tk_dbcall *c)
{
	size_t cap = j->n * (TK_KEY_ID_MAX + 24) + 3, a = 0, b = 0;
	char *ids = malloc(cap), *times = malloc(cap);

	if (!ids || !times) {
		free(ids);
		free(times);
		return -1;
	}
	ids[a++] = '{';
	times[b++] = '{';
	for (size_t i = 0; i < j->n; i++) {
		a += (size_t)snprintf(ids + a, cap - a, "%s%s", i ? "," : "", j->ids[i]);
		b += (size_t)snprintf(times + b, cap - b, "%s%lld", i ? "," : "", (long long)j->times[i]);
	}
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

void tk_dbcall_release(tk_dbcall *c)
{
	free(c->owned[0]);
	free(c->owned[1]);
	c->owned[0] = c->owned[1] = NULL;
}

/* Fill `k` from the row. -1 when a copy could not be made (out of memory):
 * the record is incomplete and must not be used or cached. */
static int parse_key_row(tk_apikey *k, PGresult *r)
{
	k->found = 1;
	snprintf(k->account, sizeof(k->account), "%s", PQgetvalue(r, 0, 0));
	size_t hlen = 0;
	unsigned char *h = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &hlen);
	if (h && hlen == TK_HASH_LEN)
		memcpy(k->hash, h, TK_HASH_LEN);
	else
		k->usable = 0;
	if (h) {
		tk_wipe(h, hlen);
		PQfreemem(h);
	}
	k->pepper_id = atoi(PQgetvalue(r, 0, 2));
	/* The previous secret of a rotation, until its overlap ends; without one
	 * (or unreadable) prev_until stays 0 and only the current secret works. */
	k->prev_until = 0;
	if (!PQgetisnull(r, 0, 13)) {
		size_t plen = 0;
		unsigned char *ph = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 13), &plen);
		if (ph && plen == TK_HASH_LEN) {
			memcpy(k->prev_hash, ph, TK_HASH_LEN);
			k->prev_until = strtoll(PQgetvalue(r, 0, 14), NULL, 10);
		}
		if (ph) {
			tk_wipe(ph, plen);
			PQfreemem(ph);
		}
	}
	const char *why;
	const char *sc = PQgetvalue(r, 0, 3);
	int scopes_ok = tk_scopes_parse(sc, strlen(sc), &k->scopes, &why) == 0;
	const char *aud = PQgetvalue(r, 0, 4);
	int copies_ok = 1;           /* an allocation failure never drops an audience or the subject */
	while (*aud && k->naud < TK_MAX_AUDIENCES) {
		const char *sp = strchr(aud, ' ');
		size_t len = sp ? (size_t)(sp - aud) : strlen(aud);
		char *copy = strndup(aud, len);
		if (!copy) {
			copies_ok = 0;
			break;
		}
		k->aud[k->naud++] = copy;
		aud += len + (sp ? 1 : 0);
	}
	if (!PQgetisnull(r, 0, 5)) {
		k->subject = strdup(PQgetvalue(r, 0, 5));
		if (!k->subject)
			copies_ok = 0;   /* NULL would mean "the key ID": another identity */
	}
	/* Environment and custom claims (sql/007): an unknown environment or an
	 * unreadable claim set makes the key unusable, never a token without them. */
	const char *env = PQgetvalue(r, 0, 11);
	int model_ok = 1;
	k->environment = strcmp(env, "live") == 0 ? "live" : strcmp(env, "test") == 0 ? "test" : NULL;
	if (!k->environment)
		model_ok = 0;
	if (!PQgetisnull(r, 0, 12)) {
		k->claims = strdup(PQgetvalue(r, 0, 12));
		if (!k->claims)
			copies_ok = 0;
	}
	/* The key's index in the status list (sql/012, NOT NULL): without a
	 * readable one the key is unusable, never a token without its status. */
	k->status_idx = -1;
	if (PQnfields(r) > 15 && !PQgetisnull(r, 0, 15)) {
		char *end = NULL;
		long long idx = strtoll(PQgetvalue(r, 0, 15), &end, 10);
		if (end && *end == '\0' && idx >= 0)
			k->status_idx = idx;
	}
	if (k->status_idx < 0)
		model_ok = 0;
	k->lifetime = atoi(PQgetvalue(r, 0, 6));
	k->rate_limit = atoi(PQgetvalue(r, 0, 9));
	k->expires_at = strtoll(PQgetvalue(r, 0, 7), NULL, 10);
	atomic_store(&k->last_used_at, (int64_t)strtoll(PQgetvalue(r, 0, 10), NULL, 10));
	static const char *const reasons[] = { "key_deleted", "key_revoked", "key_disabled", "account_disabled" };
	const char *why_not = PQgetvalue(r, 0, 8);
	k->unusable_reason = NULL;
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (strcmp(why_not, reasons[i]) == 0)
			k->unusable_reason = reasons[i];
	if (!k->unusable_reason && *why_not)
		k->unusable_reason = "key_not_usable";
	if (!k->unusable_reason && !(h && hlen == TK_HASH_LEN && scopes_ok && model_ok))
		k->unusable_reason = "key_corrupt";
	k->usable = k->unusable_reason == NULL;
	return copies_ok ? 0 : -1;
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
			tk_apikey *k = tk_apikey_new();
			if (k) {
				snprintf(k->id, sizeof(k->id), "%s", j->key_id);
				if (PQntuples(r) == 1 && parse_key_row(k, r) != 0) {
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
		tk_log(TK_LOG_WARNING, "db.query_failed", "detail", PQresultErrorMessage(r), NULL);
	PQclear(r);
}
