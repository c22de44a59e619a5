/*
 * keys.c - the admin API's key operations: list (filters, cursor pages),
 * create (the secret shown once; Idempotency-Key replays), get, rename and
 * rate limit (PATCH), disable, enable, revoke, delete (with the delete
 * guard's view of recent use on this instance). The key-state rules live in
 * SQL (sql/003_admin.sql, tokend_admin_key_action); this file checks inputs
 * and passes the caller's account, operator flag, scopes and key expiry.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include <tokend/timefmt.h>

#include "admin_int.h"
#include "keylist.h"
#include "log.h"

/*
 * GET keys: the filters of db/keylist.c (state, name, subject, unused_since,
 * ...), sort (created_at, last_used_at, name) and order (asc, desc), pages of
 * `limit` with a cursor (the last key's sort text and ID). Any other query
 * parameter is refused, naming it: a misspelt filter never lists everything.
 */
void tk_admin_keys_list(tk_adminreq *ar)
{
	static const char *const fixed[] = { "account", "limit", "cursor", "sort", "order", NULL };
	struct evkeyval *q;
	TAILQ_FOREACH(q, &ar->query, next) {
		int known = tk_keyfilter_find(q->key) != NULL;
		for (int i = 0; fixed[i] && !known; i++)
			known = strcmp(q->key, fixed[i]) == 0;
		if (!known) {
			char d[160], field[64];
			snprintf(d, sizeof(d), "unknown query parameter '%.60s'", q->key);
			tk_log_escape(q->key, strlen(q->key), field, sizeof(field));
			return tk_admin_send_error(ar, 400, "invalid_request", d, field);
		}
	}
	const char *cursor = evhttp_find_header(&ar->query, "cursor");
	const char *sort_name = evhttp_find_header(&ar->query, "sort");
	const char *order = evhttp_find_header(&ar->query, "order");
	const char *account = ar->account;
	if (ar->operator && evhttp_find_header(&ar->query, "account"))
		account = evhttp_find_header(&ar->query, "account");
	const tk_keysort *sort = tk_keysort_find(sort_name ? sort_name : "created_at");
	if (!sort)
		return tk_admin_send_error(ar, 400, "invalid_request", "sort must be created_at, last_used_at or name",
		                           "sort");
	if (order && strcmp(order, "asc") && strcmp(order, "desc"))
		return tk_admin_send_error(ar, 400, "invalid_request", "order must be asc or desc", "order");
	int desc = order && strcmp(order, "desc") == 0;
	int limit;
	if (tk_admin_parse_limit(ar, &limit) != 0)
		return;
	char skey[TK_KEYLIST_VALUE_MAX] = "", cid[64] = "", lim[16];
	if (cursor) {
		unsigned char raw[640];
		long n = strlen(cursor) < 820 ? tk_b64url_decode(cursor, strlen(cursor), raw) : -1;
		char *bar = NULL;
		for (long i = n - 1; i >= 0 && !bar; i--)
			if (raw[i] == '|')
				bar = (char *)raw + i;
		if (!bar || (size_t)(bar - (char *)raw) >= sizeof(skey) || (size_t)(n - (bar - (char *)raw) - 1) >= sizeof(cid))
			return tk_admin_send_error(ar, 400, "invalid_request", "malformed cursor", "cursor");
		memcpy(skey, raw, (size_t)(bar - (char *)raw));
		memcpy(cid, bar + 1, (size_t)(n - (bar - (char *)raw) - 1));
		if (tk_key_id_check(cid, strlen(cid)) != TK_KEYFMT_OK || memchr(skey, '\0', (size_t)(bar - (char *)raw)))
			return tk_admin_send_error(ar, 400, "invalid_request", "malformed cursor", "cursor");
	}
	snprintf(lim, sizeof(lim), "%d", limit);
	/* $1 account, $2 $3 the cursor, $4 the page size, then the filters. */
	const char *values[TK_KEYLIST_FILTERS_MAX] = { 0 };
	for (size_t i = 0; i < tk_keyfilters_count; i++)
		values[i] = evhttp_find_header(&ar->query, tk_keyfilters[i].name);
	char where[2048] = "", fparams[TK_KEYLIST_FILTERS_MAX][TK_KEYLIST_VALUE_MAX];
	const char *fp[TK_KEYLIST_FILTERS_MAX], *bad, *why;
	int nf = tk_keylist_where(values, 5, where, sizeof(where), fparams, fp, &bad, &why);
	if (nf < 0) {
		char d[200];
		snprintf(d, sizeof(d), "%s %s", bad, why);
		return tk_admin_send_error(ar, 400, "invalid_request", d, bad);
	}
	const char *p[4 + TK_KEYLIST_FILTERS_MAX] = { tk_admin_own(ar, account), cursor ? tk_admin_own(ar, skey) : NULL,
	                                             cursor ? tk_admin_own(ar, cid) : NULL, tk_admin_own(ar, lim) };
	for (int i = 0; i < nf; i++)
		p[4 + i] = tk_admin_own(ar, fp[i]);
	const char *dir = desc ? "DESC" : "ASC", *back = desc ? "ASC" : "DESC";
	char *sql = NULL;
	if (asprintf(&sql,
	             "WITH page AS ("
	             " SELECT k AS key, k.id, %s AS sort_key FROM api_keys k WHERE k.deleted_at IS NULL AND k.account_id = $1"
	             "  AND ($2::text IS NULL OR (%s, k.id) %s ($2::text, $3::text))%s"
	             " ORDER BY 3 %s, 2 %s LIMIT $4::int + 1),"
	             " shown AS (SELECT * FROM page ORDER BY sort_key %s, id %s LIMIT $4::int)"
	             " SELECT jsonb_build_object('keys', coalesce((SELECT jsonb_agg(tokend_key_json(s.key)"
	             "   ORDER BY s.sort_key %s, s.id %s) FROM shown s), '[]'::jsonb))::text,"
	             " CASE WHEN (SELECT count(*) FROM page) > $4::int THEN"
	             "  (SELECT sort_key || '|' || id FROM shown ORDER BY sort_key %s, id %s LIMIT 1) END",
	             sort->sql, sort->sql, desc ? "<" : ">", where, dir, dir, dir, dir, dir, dir, back, back) < 0)
		return tk_admin_send_error(ar, 500, "server_error", "internal error", NULL);
	/* The statement must outlive this call: the request owns it. */
	const char *owned = tk_admin_own(ar, sql);
	free(sql);
	tk_admin_run(ar, owned, 4 + nf, p, 0);
}

/*
 * A new secret for a key create or a rotation: generated with the configured
 * secret prefix into ar->secret (shown once), its hint in `hint`, its hash as
 * "\\x<hex>" in ar->hash_hex (a job parameter that stays in the request and
 * is wiped when the request is freed: never a heap copy freed unwiped).
 * 0, or -1 with ar->secret wiped.
 */
static int new_secret(tk_adminreq *ar, char hint[TK_HINT_LEN + 1])
{
	unsigned char hash[TK_HASH_LEN];
	if (tk_secret_generate_prefixed(ar->w->srv->cfg->secret_prefix, ar->secret) != TK_KEYFMT_OK ||
	    tk_hasher_hash(ar->w->hasher, ar->secret, strlen(ar->secret), hash) != 0) {
		tk_wipe(ar->secret, sizeof(ar->secret));
		tk_wipe(hash, sizeof(hash));
		return -1;
	}
	tk_secret_hint(ar->secret, hint);
	ar->hash_hex[0] = '\\';
	ar->hash_hex[1] = 'x';
	for (int i = 0; i < TK_HASH_LEN; i++)
		snprintf(ar->hash_hex + 2 + 2 * i, 3, "%02x", hash[i]);
	tk_wipe(hash, sizeof(hash));
	return 0;
}


void tk_admin_key_create(tk_adminreq *ar)
{
	static const char *const allowed[] = { "name", "scopes", "audiences", "subject", "expires_at",
	                                       "token_lifetime", "account", "rate_limit", "role", "member",
	                                       "environment", "claims", "publishable", "allowed_origins", NULL };
	if (tk_admin_only_fields(ar, allowed) != 0)
		return;
	/* A publishable key (sql/010): no secret, its exact allowed origins (an
	 * array of 1-20 strings here; each origin's rules are the database's). */
	json_t *pub = json_object_get(ar->body, "publishable");
	if (pub && !json_is_null(pub) && !json_is_boolean(pub))
		return tk_admin_send_error(ar, 400, "invalid_request", "publishable must be true or false", "publishable");
	int publishable = json_is_true(pub);
	json_t *ov = json_object_get(ar->body, "allowed_origins");
	char *origins_text = NULL;
	if (ov && !json_is_null(ov)) {
		if (!publishable)
			return tk_admin_send_error(ar, 400, "invalid_request", "allowed_origins are for publishable keys only",
			                           "allowed_origins");
		size_t oi;
		json_t *o;
		int ok = json_is_array(ov) && json_array_size(ov) >= 1 && json_array_size(ov) <= 20;
		json_array_foreach(ov, oi, o)
			ok = ok && json_is_string(o) && json_string_length(o) <= 255 &&
			     strlen(json_string_value(o)) == json_string_length(o);
		if (!ok)
			return tk_admin_send_error(ar, 400, "invalid_request",
			                           "allowed_origins must be an array of 1-20 origins (scheme://host[:port])",
			                           "allowed_origins");
		origins_text = json_dumps(ov, JSON_COMPACT);
		if (!origins_text)
			return tk_admin_send_error(ar, 500, "server_error", "out of memory", NULL);
	} else if (publishable) {
		return tk_admin_send_error(ar, 400, "invalid_request",
		                           "a publishable key needs allowed_origins: the browser origins it may be used from",
		                           "allowed_origins");
	}
	const char *p_origins = origins_text ? tk_admin_own(ar, origins_text) : NULL;
	free(origins_text);
	const char *name, *subject, *expires_at, *account = ar->account, *role, *member, *env;
	if (tk_admin_get_string(ar, "name", 1, 100, &name) != 0 || tk_admin_get_string(ar, "subject", 0, 255, &subject) != 0 ||
	    tk_admin_get_string(ar, "expires_at", 0, 64, &expires_at) != 0 ||
	    tk_admin_get_string(ar, "role", 0, 63, &role) != 0 || tk_admin_get_string(ar, "member", 0, 128, &member) != 0 ||
	    tk_admin_get_string(ar, "environment", 0, 8, &env) != 0)
		return;
	/* A role or scopes, never both (the role's scopes are copied in SQL). */
	json_t *sc = json_object_get(ar->body, "scopes");
	if (role && sc && !json_is_null(sc))
		return tk_admin_send_error(ar, 400, "invalid_request", "give a role or scopes, not both", "role");
	if (env && strcmp(env, "live") != 0 && strcmp(env, "test") != 0)
		return tk_admin_send_error(ar, 400, "invalid_request", "environment must be live or test", "environment");
	/* Custom claims: an object, checked in full by the database function. */
	json_t *cl = json_object_get(ar->body, "claims");
	char *claims_text = NULL;
	if (cl && !json_is_null(cl)) {
		if (!json_is_object(cl))
			return tk_admin_send_error(ar, 400, "invalid_request", "claims must be a JSON object", "claims");
		claims_text = json_dumps(cl, JSON_COMPACT);
		if (!claims_text)
			return tk_admin_send_error(ar, 500, "server_error", "out of memory", NULL);
		if (strlen(claims_text) > 1024) {
			free(claims_text);
			return tk_admin_send_error(ar, 400, "invalid_request", "claims must be at most 1024 bytes of JSON",
			                           "claims");
		}
	}
	const char *p_claims = claims_text ? tk_admin_own(ar, claims_text) : NULL;
	free(claims_text);
	/* A subject is never shaped like a key ID or a secret: tokens' sub must
	 * never read as another key's identity (and a secret is never stored). */
	if (subject && (strncmp(subject, TK_KEY_ID_PREFIX, strlen(TK_KEY_ID_PREFIX)) == 0 ||
	                strncmp(subject, TK_SECRET_PREFIX, strlen(TK_SECRET_PREFIX)) == 0))
		return tk_admin_send_error(ar, 400, "invalid_request",
		                           "subject must not start with tk_ or tks_ (reserved for key IDs and secrets)", "subject");
	json_t *acct = json_object_get(ar->body, "account");
	if (acct && !json_is_null(acct)) {
		if (!json_is_string(acct))
			return tk_admin_send_error(ar, 400, "invalid_request", "account must be a string", "account");
		if (strcmp(json_string_value(acct), ar->account) != 0 && !ar->operator)
			return tk_admin_send_forbidden(ar, TK_ADMIN_SCOPE_OPERATOR, "only an operator acts on another account");
		account = json_string_value(acct);
	}
	char *scopes = NULL, *auds = NULL;
	size_t nscopes, nauds;
	if (tk_admin_get_string_array(ar, "scopes", !role, TK_SCOPES_MAX, 1, &scopes, &nscopes) != 0)
		return;
	if (tk_admin_get_string_array(ar, "audiences", 0, TK_MAX_AUDIENCES, 0, &auds, &nauds) != 0) {
		free(scopes);
		return;
	}
	/* Every token carries the key's scopes joined by spaces: they must fit the
	 * scope-string limit the token path enforces, or no token could be issued. */
	size_t joined = 0;
	json_t *sv;
	size_t si;
	json_array_foreach(json_object_get(ar->body, "scopes"), si, sv)
		joined += json_string_length(sv) + (si ? 1 : 0);
	if (joined > TK_SCOPE_STRING_MAX) {
		free(scopes);
		free(auds);
		char d[128];
		snprintf(d, sizeof(d), "scopes joined by spaces must be at most %d bytes (here %zu)",
		         TK_SCOPE_STRING_MAX, joined);
		return tk_admin_send_error(ar, 400, "invalid_request", d, "scopes");
	}
	const char *p_scopes = scopes ? tk_admin_own(ar, scopes) : "[]", *p_auds = tk_admin_own(ar, auds);
	free(scopes);
	free(auds);
	char exp_text[32] = "", life_text[16] = "";
	if (expires_at) {
		int64_t e;
		const char *why;
		if (tk_rfc3339_parse(expires_at, &e, &why) != 0)
			return tk_admin_send_error(ar, 400, "invalid_request", "expires_at must be an RFC 3339 time", "expires_at");
		if (e <= (int64_t)time(NULL))
			return tk_admin_send_error(ar, 400, "invalid_request", "expires_at is in the past", "expires_at");
		tk_rfc3339_format(e, exp_text);
	}
	json_t *lt = json_object_get(ar->body, "token_lifetime");
	if (lt && !json_is_null(lt)) {
		if (!json_is_integer(lt) || json_integer_value(lt) < 1)
			return tk_admin_send_error(ar, 400, "invalid_request", "token_lifetime must be a positive whole number of seconds",
			                           "token_lifetime");
		if (json_integer_value(lt) > ar->w->srv->cfg->token_lifetime_max)
			return tk_admin_send_error(ar, 400, "invalid_request", "token_lifetime is above the server maximum",
			                           "token_lifetime");
		snprintf(life_text, sizeof(life_text), "%lld", (long long)json_integer_value(lt));
	}
	char rate_text[16];
	if (tk_admin_get_rate_limit(ar, rate_text) < 0)
		return;
	const char *idem = evhttp_find_header(evhttp_request_get_input_headers(ar->req), "Idempotency-Key");
	/* An empty key would make the create silently non-idempotent: refused,
	 * as is a header given twice (which one would count?). */
	if (idem && !*idem)
		return tk_admin_send_error(ar, 400, "invalid_request", "Idempotency-Key is empty: leave the header "
		                           "out, or give 1-255 printable characters", "Idempotency-Key");
	if (idem && tk_admin_check_text(idem, 255))
		return tk_admin_send_error(ar, 400, "invalid_request", "Idempotency-Key must be 1-255 printable characters",
		                           "Idempotency-Key");
	if (idem && tk_header_count(evhttp_request_get_input_headers(ar->req), "Idempotency-Key") > 1)
		return tk_admin_send_error(ar, 400, "invalid_request", "Idempotency-Key is given more than once",
		                           "Idempotency-Key");
	/* The request's fingerprint: a retry must be the same request. */
	char *canon = json_dumps(ar->body, JSON_COMPACT | JSON_SORT_KEYS);
	unsigned char md[32];
	unsigned int mdlen = 0;
	char fp[48] = "";
	if (canon) {
		EVP_Digest(canon, strlen(canon), md, &mdlen, EVP_sha256(), NULL);
		tk_b64url_encode(md, 16, fp);
		free(canon);
	}
	/* The new key's ID, secret and hash. */
	char id[TK_KEY_ID_MAX + 1], hint[TK_HINT_LEN + 1];
	const tk_config *cfg = ar->w->srv->cfg;
	int test = env && strcmp(env, "test") == 0;
	const char *id_prefix = publishable ? (test ? cfg->key_id_prefix_publishable_test : cfg->key_id_prefix_publishable)
	                                    : (test ? cfg->key_id_prefix_test : cfg->key_id_prefix_live);
	if (tk_key_id_generate_prefixed(id_prefix, id) != TK_KEYFMT_OK || (!publishable && new_secret(ar, hint) != 0))
		return tk_admin_send_error(ar, 500, "server_error", "could not generate a key", NULL);
	/* The caller's own token scopes, operator flag and key expiry go to the
	 * database function, which applies the delegation rules. The key's expiry
	 * is read in the same statement: none = NULL, a missing key = -infinity
	 * (so that a key that vanished refuses rather than widens). */
	const char *p[] = { tk_admin_own(ar, ar->actor), tk_admin_own(ar, ar->address), tk_admin_own(ar, account), tk_admin_own(ar, id), name,
	                    publishable ? NULL : ar->hash_hex, publishable ? NULL : tk_admin_own(ar, hint), p_scopes, p_auds, subject,
	                    expires_at ? tk_admin_own(ar, exp_text) : NULL, lt && !json_is_null(lt) ? tk_admin_own(ar, life_text) : NULL,
	                    idem ? tk_admin_own(ar, idem) : NULL, tk_admin_own(ar, fp), rate_text[0] ? tk_admin_own(ar, rate_text) : NULL,
	                    ar->operator ? "t" : "f", tk_admin_own(ar, ar->caller_scope), tk_admin_own(ar, ar->caller_key),
	                    role, member, env, p_claims, publishable ? "t" : "f", p_origins };
	tk_admin_run(ar,
	             "SELECT tokend_admin_create_key($1, $2, $3, $4, $5, $6::bytea, $7,"
	             " ARRAY(SELECT jsonb_array_elements_text($8::jsonb)), ARRAY(SELECT jsonb_array_elements_text($9::jsonb)),"
	             " $10, $11::timestamptz, $12::int, $13, $14, $15::int, $16::boolean,"
	             " string_to_array(nullif($17, ''), ' ') || '{}'::text[],"
	             " nullif(coalesce((SELECT coalesce(c.expires_at, 'infinity'::timestamptz) FROM api_keys c WHERE c.id = $18),"
	             "  '-infinity'::timestamptz), 'infinity'::timestamptz),"
	             " $19, $20, $21, $22::jsonb, $23::boolean,"
	             " CASE WHEN $24::jsonb IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text($24::jsonb)) END)::text",
	             24, p, 1);
}

/*
 * The delete guard's view of this instance: the database's last_used_at
 * lags the batched marks, so a use this process knows of (the cached key's
 * last use, this worker's unflushed mark) counts too. Only for a key of the
 * caller's account (or the operator's), still listed: otherwise the
 * database answers as usual (404, or nothing to guard). 1 when it answered
 * 409 recently_used.
 */
static int recently_used_here(tk_adminreq *ar)
{
	tk_apikey *k = tk_keycache_get(ar->w->srv->cache, ar->id);
	int64_t last = tk_lastused_pending(ar->w, ar->id);
	int mine = 0;
	if (k) {
		mine = k->found && (ar->operator || strcmp(k->account, ar->account) == 0) &&
		       k->reason != TK_UNUSABLE_DELETED;
		int64_t known = atomic_load(&k->last_used_at);
		if (known > last)
			last = known;
		tk_apikey_release(k);
	}
	/* Uses are recorded to last_used_precision: one up to that much after
	 * `last` may have gone unrecorded, so the window is widened by it. */
	if (!mine || last <= (int64_t)time(NULL) - TK_RECENT_USE_WINDOW - ar->w->srv->cfg->last_used_precision)
		return 0;
	char when[32], d[200];
	time_t t = (time_t)last;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(d, sizeof(d), "key %s was used in the last 24 hours (last used %s); confirm to delete it",
	         ar->id, when);
	tk_admin_send_error(ar, 409, "recently_used", d, NULL);
	return 1;
}

void tk_admin_key_get(tk_adminreq *ar)
{
	if (tk_key_id_check(ar->id, strlen(ar->id)) != TK_KEYFMT_OK)
		return tk_admin_send_error(ar, 404, "not_found", "no such key", NULL);
	const char *p[] = { tk_admin_own(ar, ar->id), tk_admin_own(ar, ar->account), ar->operator ? "t" : "f" };
	tk_admin_run(ar, "SELECT tokend_key_json(k)::text FROM api_keys k WHERE k.id = $1 AND k.deleted_at IS NULL"
	             " AND ($3::boolean OR k.account_id = $2)", 3, p, 0);
}

void tk_admin_key_action(tk_adminreq *ar)
{
	const char *action = ar->op == TK_ADMIN_OP_KEY_PATCH ? "rename"
	                     : ar->op == TK_ADMIN_OP_KEY_DISABLE ? "disable"
	                     : ar->op == TK_ADMIN_OP_KEY_ENABLE ? "enable"
	                     : ar->op == TK_ADMIN_OP_KEY_REVOKE ? "revoke" : "delete";
	const char *arg = NULL;
	int confirm = 0;
	if (ar->op == TK_ADMIN_OP_KEY_PATCH) {
		static const char *const allowed[] = { "name", "rate_limit", NULL };
		json_t *v;
		const char *k;
		json_object_foreach(ar->body, k, v) {
			if (strcmp(k, "scopes") == 0 || strcmp(k, "audiences") == 0 || strcmp(k, "subject") == 0 ||
			    strcmp(k, "expires_at") == 0 || strcmp(k, "token_lifetime") == 0) {
				char d[160];
				snprintf(d, sizeof(d), "%s cannot change after creation: create a new key and delete this one", k);
				return tk_admin_send_error(ar, 400, "immutable_field", d, k);
			}
		}
		char rate_text[16];
		int set_rate;
		if (tk_admin_only_fields(ar, allowed) != 0 || tk_admin_get_string(ar, "name", 0, 100, &arg) != 0 ||
		    (set_rate = tk_admin_get_rate_limit(ar, rate_text)) < 0)
			return;
		if (!arg && !set_rate)
			return tk_admin_send_error(ar, 400, "invalid_request", "nothing to change: give name or rate_limit", NULL);
		if (tk_key_id_check(ar->id, strlen(ar->id)) != TK_KEYFMT_OK)
			return tk_admin_send_error(ar, 404, "not_found", "no such key", NULL);
		const char *p[] = { tk_admin_own(ar, ar->actor), tk_admin_own(ar, ar->address), ar->operator ? NULL : tk_admin_own(ar, ar->account),
		                    tk_admin_own(ar, ar->id), arg, set_rate ? "t" : "f", rate_text[0] ? tk_admin_own(ar, rate_text) : NULL,
		                    ar->operator ? "t" : "f" };
		return tk_admin_run(ar, "SELECT tokend_admin_patch_key($1, $2, $3, $4, $5, $6::boolean, $7::int, $8::boolean)::text",
		                    8, p, 1);
	} else if (ar->op == TK_ADMIN_OP_KEY_REVOKE) {
		static const char *const allowed[] = { "reason", NULL };
		if (ar->body && (tk_admin_only_fields(ar, allowed) != 0 || tk_admin_get_string(ar, "reason", 0, 500, &arg) != 0))
			return;
	} else if (ar->op == TK_ADMIN_OP_KEY_DISABLE || ar->op == TK_ADMIN_OP_KEY_ENABLE) {
		static const char *const none[] = { NULL };
		if (ar->body && tk_admin_only_fields(ar, none) != 0)
			return;
	} else if (ar->op == TK_ADMIN_OP_KEY_DELETE) {
		const char *c = evhttp_find_header(&ar->query, "confirm");
		confirm = c && (strcmp(c, "true") == 0 || strcmp(c, "1") == 0);
	}
	if (tk_key_id_check(ar->id, strlen(ar->id)) != TK_KEYFMT_OK)
		return tk_admin_send_error(ar, 404, "not_found", "no such key", NULL);
	if (ar->op == TK_ADMIN_OP_KEY_DELETE && !confirm && recently_used_here(ar))
		return;
	/* The deletion guard's window widens by the precision of last-used
	 * times (sql/015: tokend.last_used_precision, for this transaction). */
	char precision[24];
	snprintf(precision, sizeof(precision), "%lld", (long long)ar->w->srv->cfg->last_used_precision);
	const char *p[] = { tk_admin_own(ar, ar->actor), tk_admin_own(ar, ar->address), ar->operator ? NULL : tk_admin_own(ar, ar->account),
	                    tk_admin_own(ar, ar->id), action, arg, confirm ? "t" : "f", ar->operator ? "t" : "f",
	                    tk_admin_own(ar, precision) };
	tk_admin_run(ar, "SELECT tokend_admin_key_action($1, $2, $3, $4, $5, $6, $7::boolean, $8::boolean)::text"
	                 " FROM (SELECT set_config('tokend.last_used_precision', $9, true)) s", 9, p, 1);
}

json_t *tk_admin_key_created(tk_adminreq *ar, json_t *answer, int *status)
{
	json_t *key = json_object_get(answer, "key");
	const char *client_id = json_string_value(json_object_get(key, "client_id"));
	if (!json_is_object(key) || !client_id || tk_key_id_check(client_id, strlen(client_id)) != TK_KEYFMT_OK) {
		tk_log(TK_LOG_ERROR, "admin.bad_result", "req", ar->ri.id, "detail", "key creation answered no key", NULL);
		return NULL;
	}
	json_incref(key);
	char loc[128];
	snprintf(loc, sizeof(loc), TK_ADMIN_PREFIX "keys/%s", client_id);
	evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Location", loc);
	if (json_is_string(json_object_get(key, "kind")) &&
	    strcmp(json_string_value(json_object_get(key, "kind")), "publishable") == 0) {
		/* No secret: the key ID is the whole (public) credential. */
		json_object_set_new(key, "client_secret", json_null());
		if (json_is_true(json_object_get(answer, "replayed")))
			evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Idempotent-Replayed", "true");
		*status = json_is_true(json_object_get(answer, "replayed")) ? 200 : 201;
	} else if (json_is_true(json_object_get(answer, "replayed"))) {
		/* The same request again: the same key, never a second one. The
		 * secret was shown once, in the first response. */
		evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Idempotent-Replayed", "true");
		json_object_set_new(key, "client_secret", json_null());
		json_object_set_new(key, "note", json_string("idempotent replay: the secret was returned by the "
		                                             "first response only; if it was lost, delete this key "
		                                             "and create a new one"));
		*status = 200;
	} else {
		json_object_set_new(key, "client_secret", json_string(ar->secret));
		tk_wipe(ar->secret, sizeof(ar->secret));
		*status = 201;
	}
	return key;
}

/*
 * POST keys/{id}/rotate-secret {"overlap_seconds": N}: a new secret for the
 * key (shown once, in this answer); the current one keeps working for N
 * seconds (0: it stops now), then stops. The rules (active key, at most 30
 * days, not past the key's expiry, only the previous secret survives) are
 * tokend_admin_rotate_secret's (sql/008_secret_rotation.sql); this checks the
 * input's shape and makes the secret.
 */
void tk_admin_key_rotate(tk_adminreq *ar)
{
	static const char *const allowed[] = { "overlap_seconds", NULL };
	if (tk_admin_only_fields(ar, allowed) != 0)
		return;
	json_t *ov = json_object_get(ar->body, "overlap_seconds");
	if (!ov || json_is_null(ov))
		return tk_admin_send_error(ar, 400, "invalid_request",
		                           "overlap_seconds is required: how long the current secret keeps working "
		                           "(0: it stops now)", "overlap_seconds");
	if (!json_is_integer(ov) || json_integer_value(ov) < 0 || json_integer_value(ov) > TK_ROTATE_OVERLAP_MAX)
		return tk_admin_send_error(ar, 400, "invalid_request",
		                           "overlap_seconds must be a whole number from 0 to 2592000 (30 days)",
		                           "overlap_seconds");
	if (tk_key_id_check(ar->id, strlen(ar->id)) != TK_KEYFMT_OK)
		return tk_admin_send_error(ar, 404, "not_found", "no such key", NULL);
	char overlap[24], hint[TK_HINT_LEN + 1];
	snprintf(overlap, sizeof(overlap), "%lld", (long long)json_integer_value(ov));
	if (new_secret(ar, hint) != 0)
		return tk_admin_send_error(ar, 500, "server_error", "could not generate a secret", NULL);
	const char *p[] = { tk_admin_own(ar, ar->actor), tk_admin_own(ar, ar->address),
	                    ar->operator ? NULL : tk_admin_own(ar, ar->account), tk_admin_own(ar, ar->id),
	                    ar->hash_hex, tk_admin_own(ar, hint), tk_admin_own(ar, overlap), ar->operator ? "t" : "f" };
	tk_admin_run(ar, "SELECT tokend_admin_rotate_secret($1, $2, $3, $4, $5::bytea, $6, $7::int, $8::boolean)::text",
	             8, p, 1);
}
