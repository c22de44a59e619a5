/*
 * admin.c - the admin REST API under /admin/v1/.
 *
 * Authentication: a bearer access token issued by this tokend, verified with
 * the same library code a resource server uses (tk_verify: signature, issuer,
 * typ, times, and aud containing the issuer), whose key is still usable and
 * whose jti is not revoked (read from the database on every request, so a
 * key disabled, revoked or deleted mid-session is refused at once).
 *
 * Authorisation: tokend:admin:read reads the token's own account;
 * tokend:admin:write also changes it; tokend:operator acts on every account.
 * Key creation also passes the token's scopes, the operator flag and the
 * caller's key expiry to tokend_admin_create_key, which refuses scopes not in
 * the account's allow-list, tokend:* scopes the token does not hold, and an
 * expiry beyond the caller's (sql/005_account_scopes.sql).
 * 401 = no or bad credentials (WWW-Authenticate: Bearer error="invalid_token");
 * 403 = authenticated but not allowed (insufficient_scope, naming the scope).
 *
 * Every operation is one database call (sql/003_admin.sql functions or a
 * single statement), run on the database pool; the audit triggers record the
 * actor ("admin:<key id>") and the client address.
 */
#include <errno.h>
#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/evp.h>

#include <tokend/keyfmt.h>
#include <tokend/scope.h>
#include <tokend/timefmt.h>
#include <tokend/verify.h>

#include "admin.h"
#include "input.h"
#include "log.h"
#include "server.h"

#define SCOPE_READ     "tokend:admin:read"
#define SCOPE_WRITE    "tokend:admin:write"
#define SCOPE_OPERATOR "tokend:operator"
#define ADMIN_BODY_MAX 65536
#define PAGE_DEFAULT   50
#define PAGE_MAX       200

typedef enum { NEED_READ, NEED_WRITE, NEED_OPERATOR } need_t;

typedef enum {
	OP_ACCOUNT_SELF, OP_ACCOUNTS_LIST, OP_ACCOUNTS_CREATE, OP_ACCOUNT_GET, OP_ACCOUNT_PATCH,
	OP_SCOPES_LIST, OP_SCOPES_ADD, OP_KEYS_LIST, OP_KEYS_CREATE, OP_KEY_GET, OP_KEY_PATCH,
	OP_KEY_DISABLE, OP_KEY_ENABLE, OP_KEY_REVOKE, OP_KEY_DELETE, OP_AUDIT, OP_ACCOUNT_SCOPES,
} op_t;

typedef struct adminreq {
	tk_worker *w;
	struct evhttp_request *req;
	tk_reqinfo ri;
	op_t op;
	need_t need;
	char id[72];                      /* {id} from the path */
	char account[64];                 /* the caller's account */
	char caller_key[TK_KEY_ID_LEN + 1];
	char caller_jti[72];
	char caller_scope[TK_SCOPE_STRING_MAX + 1];   /* the token's scope claim ("" if none) */
	int operator;
	int can_write;
	char actor[96];
	char address[64];
	json_t *body;                     /* POST/PATCH body */
	struct evkeyvalq query;           /* decoded query string */
	int have_query;
	char *own[TK_DBJOB_MAX_PARAMS];   /* strings owned for the job's params */
	int nown;
	int oom;                          /* own() failed: run() answers 500, never queries */
	char secret[TK_SECRET_LEN + 1];   /* key create: shown once */
	tk_dbjob job;
	int stage;                        /* 0: checking the caller; 1: the operation */
	int queued;                       /* a job is out: op_done answers and frees */
} adminreq;

static void adminreq_free(adminreq *ar)
{
	json_decref(ar->body);
	if (ar->have_query)
		evhttp_clear_headers(&ar->query);
	for (int i = 0; i < ar->nown; i++)
		free(ar->own[i]);
	tk_wipe(ar->secret, sizeof(ar->secret));
	if (ar->job.result)
		PQclear(ar->job.result);
	free(ar);
}

/* ---- responses ---- */

static void send_json(adminreq *ar, int status, json_t *o)
{
	char *body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	struct evkeyvalq *out = evhttp_request_get_output_headers(ar->req);
	evhttp_add_header(out, "Cache-Control", "no-store");
	tk_http_reply(ar->w, ar->req, &ar->ri, status, "application/json", body, body ? strlen(body) : 0);
	if (body) {
		tk_wipe(body, strlen(body));
		free(body);
	}
}

static void send_error(adminreq *ar, int status, const char *error, const char *description,
                       const char *field)
{
	json_t *o = json_pack("{s:s, s:s}", "error", error, "error_description", description);
	if (field)
		json_object_set_new(o, "field", json_string(field));
	send_json(ar, status, o);
}

static void send_unauthenticated(adminreq *ar, const char *description)
{
	evhttp_add_header(evhttp_request_get_output_headers(ar->req), "WWW-Authenticate",
	                  "Bearer realm=\"tokend-admin\", error=\"invalid_token\"");
	send_error(ar, 401, "invalid_token", description, NULL);
}

static void send_forbidden(adminreq *ar, const char *scope, const char *description)
{
	char www[160];
	snprintf(www, sizeof(www), "Bearer realm=\"tokend-admin\", error=\"insufficient_scope\", scope=\"%s\"", scope);
	evhttp_add_header(evhttp_request_get_output_headers(ar->req), "WWW-Authenticate", www);
	json_t *o = json_pack("{s:s, s:s, s:s}", "error", "insufficient_scope", "error_description", description,
	                      "scope", scope);
	send_json(ar, 403, o);
}

/* ---- the database call ---- */

/*
 * A copy of `s` owned by the request (freed with it), for a job parameter.
 * NULL for a NULL `s`. A failed copy (allocation, or more than 16) also
 * returns NULL and marks the request, so that run() refuses with 500: a NULL
 * parameter never stands in for a value that could not be copied (a NULL
 * account would otherwise widen a query).
 */
static const char *own(adminreq *ar, const char *s)
{
	if (!s)
		return NULL;
	char *copy = ar->nown < TK_DBJOB_MAX_PARAMS ? strdup(s) : NULL;
	if (!copy) {
		ar->oom = 1;
		return NULL;
	}
	ar->own[ar->nown++] = copy;
	return copy;
}

static void op_done(tk_dbjob *job);

static void run(adminreq *ar, const char *sql, int nparams, const char *const *params, int writes)
{
	if (ar->oom || nparams > TK_DBJOB_MAX_PARAMS) {
		tk_log(TK_LOG_ERROR, "admin.oom", "req", ar->ri.id, NULL);
		send_error(ar, 500, "server_error", "internal error", NULL);
		return;   /* not queued: the caller frees */
	}
	tk_dbjob *j = &ar->job;
	memset(j, 0, sizeof(*j));
	j->kind = TK_DBJOB_QUERY;
	j->done = op_done;
	j->reply = ar->w->mbox;
	j->arg = ar;
	j->sql = sql;
	j->nparams = nparams;
	j->no_retry = writes;
	for (int i = 0; i < nparams; i++)
		j->params[i] = params[i];
	if (tk_dbpool_submit(ar->w->srv->db, j) != 0) {
		tk_metric_add(&ar->w->metrics.db_errors, 1);
		evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Retry-After", "1");
		send_error(ar, 503, "temporarily_unavailable", "the database is unavailable; retry shortly", NULL);
		return;   /* not queued: the caller frees */
	}
	ar->queued = 1;
	ar->w->pending++;
}

/* Map a database refusal (HINT) to an API error. */
static void send_db_error(adminreq *ar, PGresult *r)
{
	const char *hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
	const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (!msg)
		msg = "database error";
	/* Name the field: a check constraint "<table>_<column>_check", or the hint. */
	char field[64] = "";
	const char *constraint = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
	if (constraint) {
		static const char *const tables[] = { "api_keys_", "accounts_", "scopes_" };
		for (size_t i = 0; i < 3; i++) {
			size_t tl = strlen(tables[i]), cl = strlen(constraint);
			if (strncmp(constraint, tables[i], tl) == 0 && cl > tl + 6 &&
			    strcmp(constraint + cl - 6, "_check") == 0 && cl - tl - 6 < sizeof(field)) {
				memcpy(field, constraint + tl, cl - tl - 6);
				field[cl - tl - 6] = '\0';
			}
		}
		if (strcmp(field, "secret_hint") == 0 || strcmp(field, "secret_hash") == 0)
			field[0] = '\0';
	}
	if (hint && (strcmp(hint, "unknown_scope") == 0 || strcmp(hint, "scope_not_granted") == 0 ||
	             strcmp(hint, "forbidden_scope") == 0 || strcmp(hint, "scopes_too_long") == 0))
		snprintf(field, sizeof(field), "scopes");
	else if (hint && strcmp(hint, "outlives_creator") == 0)
		snprintf(field, sizeof(field), "expires_at");
	else if (hint && strcmp(hint, "subject_reserved") == 0)
		snprintf(field, sizeof(field), "subject");
	if (strcmp(field, "revoke_reason") == 0)
		snprintf(field, sizeof(field), "reason");
	if (field[0] && state && strcmp(state, "23514") == 0) {
		char d[120];
		snprintf(d, sizeof(d), "%s is not valid", field);
		return send_error(ar, 400, "invalid_request", d, field);
	}
	static const struct { const char *hint; int status; const char *error; } map[] = {
		{ "not_found", 404, "not_found" },
		{ "revoked", 409, "revoked" },
		{ "deleted", 404, "not_found" },
		{ "recently_used", 409, "recently_used" },
		{ "key_limit", 409, "key_limit_reached" },
		{ "unknown_scope", 400, "invalid_scope" },
		{ "forbidden_scope", 403, "forbidden_scope" },
		{ "scope_not_granted", 403, "forbidden_scope" },
		{ "forbidden", 403, "forbidden" },
		{ "outlives_creator", 400, "invalid_request" },
		{ "subject_reserved", 400, "invalid_request" },
		{ "scopes_too_long", 400, "invalid_request" },
		{ "idempotency_mismatch", 422, "idempotency_mismatch" },
		{ "invalid", 400, "invalid_request" },
		{ "tokend_revoked", 409, "revoked" },
		{ "tokend_deleted", 404, "not_found" },
	};
	for (size_t i = 0; hint && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(hint, map[i].hint) == 0)
			return send_error(ar, map[i].status, map[i].error, msg, field[0] ? field : NULL);
	if (state && strcmp(state, "23505") == 0)
		return send_error(ar, 409, "conflict", "it already exists", NULL);
	if (state && (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0))
		return send_error(ar, 400, "invalid_request", msg, NULL);
	if (state && strcmp(state, "57014") == 0) {   /* statement timeout */
		evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Retry-After", "1");
		return send_error(ar, 503, "temporarily_unavailable", "the database did not answer in time", NULL);
	}
	tk_log(TK_LOG_ERROR, "admin.db_error", "req", ar->ri.id, "detail", msg, NULL);
	send_error(ar, 500, "server_error", "internal error", NULL);
}

/* ---- validation helpers ---- */

/* Refuse members other than `allowed` (NULL-terminated). */
static int only_fields(adminreq *ar, const char *const *allowed)
{
	const char *k;
	json_t *v;
	json_object_foreach(ar->body, k, v) {
		int ok = 0;
		for (int i = 0; allowed[i]; i++)
			ok |= strcmp(k, allowed[i]) == 0;
		if (!ok) {
			char d[200];
			snprintf(d, sizeof(d), "unknown field '%.60s'", k);
			char field[64];
			tk_log_escape(k, strlen(k), field, sizeof(field));
			send_error(ar, 400, "invalid_request", d, field);
			return -1;
		}
	}
	return 0;
}

/* A display text (valid UTF-8, as JSON strings are): 1..max characters, no
 * control, bidi, zero-width or other invisible character (tk_input_text_unsafe). */
static const char *check_text(const char *s, size_t max)
{
	size_t n = strlen(s), chars = 0;
	if (n == 0)
		return "must not be empty";
	const char *why = tk_input_text_unsafe(s, n);
	if (why)
		return why;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			chars++;
	if (chars > max)
		return max == 100 ? "must be at most 100 characters"
		       : max == 255 ? "must be at most 255 characters"
		       : max == 500 ? "must be at most 500 characters" : "is too long";
	return NULL;
}

static int get_string(adminreq *ar, const char *field, int required, size_t max, const char **out)
{
	json_t *v = json_object_get(ar->body, field);
	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required) {
			char d[96];
			snprintf(d, sizeof(d), "%s is required", field);
			send_error(ar, 400, "invalid_request", d, field);
			return -1;
		}
		return 0;
	}
	if (!json_is_string(v)) {
		char d[96];
		snprintf(d, sizeof(d), "%s must be a string", field);
		send_error(ar, 400, "invalid_request", d, field);
		return -1;
	}
	const char *why = check_text(json_string_value(v), max);
	if (why || strlen(json_string_value(v)) != json_string_length(v)) {
		char d[128];
		snprintf(d, sizeof(d), "%s %s", field, why ? why : "must not contain NUL");
		send_error(ar, 400, "invalid_request", d, field);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

/* A JSON array of distinct strings -> PostgreSQL array literal via JSON text. */
static int get_string_array(adminreq *ar, const char *field, int required, size_t maxn, int scopes,
                            char **json_out, size_t *count)
{
	json_t *v = json_object_get(ar->body, field);
	*json_out = NULL;
	*count = 0;
	char d[160];
	if (!v || json_is_null(v)) {
		if (required) {
			snprintf(d, sizeof(d), "%s is required", field);
			send_error(ar, 400, "invalid_request", d, field);
			return -1;
		}
		*json_out = strdup("[]");
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) > maxn) {
		snprintf(d, sizeof(d), "%s must be an array of at most %zu strings", field, maxn);
		send_error(ar, 400, "invalid_request", d, field);
		return -1;
	}
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e) {
		const char *s = json_string_value(e);
		const char *why = NULL;
		if (!s || strlen(s) != json_string_length(e))
			why = "must hold strings";
		else if (scopes && !tk_scope_token_valid(s, strlen(s)))
			why = "holds an invalid scope name";
		else if (!scopes && (strlen(s) == 0 || strlen(s) > 255 || strpbrk(s, " \"\\") ||
		                     check_text(s, 255)))
			why = "holds an invalid audience (printable, no spaces, at most 255 characters)";
		else {
			for (size_t k = 0; k < i && !why; k++)
				if (strcmp(json_string_value(json_array_get(v, k)), s) == 0)
					why = "holds a duplicate";
		}
		if (why) {
			snprintf(d, sizeof(d), "%s %s", field, why);
			send_error(ar, 400, "invalid_request", d, field);
			return -1;
		}
	}
	if (required && json_array_size(v) == 0) {
		snprintf(d, sizeof(d), "%s must not be empty", field);
		send_error(ar, 400, "invalid_request", d, field);
		return -1;
	}
	*json_out = json_dumps(v, JSON_COMPACT);
	*count = json_array_size(v);
	return 0;
}

/* ---- operations ---- */

static int parse_limit(adminreq *ar, int *limit)
{
	const char *l = evhttp_find_header(&ar->query, "limit");
	*limit = PAGE_DEFAULT;
	if (!l)
		return 0;
	char *end;
	errno = 0;
	long v = strtol(l, &end, 10);
	if (errno || end == l || *end || v < 1 || v > PAGE_MAX) {
		send_error(ar, 400, "invalid_request", "limit must be a whole number from 1 to 200", "limit");
		return -1;
	}
	*limit = (int)v;
	return 0;
}

static void keys_list(adminreq *ar)
{
	const char *state = evhttp_find_header(&ar->query, "state");
	const char *name = evhttp_find_header(&ar->query, "name");
	const char *cursor = evhttp_find_header(&ar->query, "cursor");
	const char *account = ar->account;
	if (ar->operator && evhttp_find_header(&ar->query, "account"))
		account = evhttp_find_header(&ar->query, "account");
	if (state && strcmp(state, "enabled") && strcmp(state, "disabled") && strcmp(state, "revoked") &&
	    strcmp(state, "expired"))
		return send_error(ar, 400, "invalid_request", "state must be enabled, disabled, revoked or expired",
		                  "state");
	if (name && check_text(name, 100))
		return send_error(ar, 400, "invalid_request", "name filter must be 1-100 printable characters", "name");
	int limit;
	if (parse_limit(ar, &limit) != 0)
		return;
	char ts[64] = "", cid[64] = "", lim[16];
	if (cursor) {
		unsigned char raw[128];
		long n = strlen(cursor) < 160 ? tk_b64url_decode(cursor, strlen(cursor), raw) : -1;
		char *bar = n > 0 ? memchr(raw, '|', (size_t)n) : NULL;
		if (!bar || (size_t)(bar - (char *)raw) >= sizeof(ts) || (size_t)(n - (bar - (char *)raw) - 1) >= sizeof(cid))
			return send_error(ar, 400, "invalid_request", "malformed cursor", "cursor");
		memcpy(ts, raw, (size_t)(bar - (char *)raw));
		memcpy(cid, bar + 1, (size_t)(n - (bar - (char *)raw) - 1));
		if (tk_key_id_check(cid, strlen(cid)) != TK_KEYFMT_OK)
			return send_error(ar, 400, "invalid_request", "malformed cursor", "cursor");
	}
	snprintf(lim, sizeof(lim), "%d", limit);
	const char *p[] = { own(ar, account), own(ar, state), own(ar, name), cursor ? own(ar, ts) : NULL,
	                    cursor ? own(ar, cid) : NULL, own(ar, lim) };
	run(ar,
	    "WITH page AS ("
	    " SELECT k.* FROM api_keys k WHERE k.deleted_at IS NULL AND k.account_id = $1"
	    "  AND ($2::text IS NULL OR tokend_key_state(k) = $2)"
	    "  AND ($3::text IS NULL OR strpos(lower(k.name), lower($3)) > 0)"
	    "  AND ($4::text IS NULL OR (k.created_at, k.id) > ($4::timestamptz, $5::text))"
	    " ORDER BY k.created_at, k.id LIMIT $6::int + 1),"
	    " shown AS (SELECT * FROM page ORDER BY created_at, id LIMIT $6::int)"
	    " SELECT jsonb_build_object('keys', coalesce((SELECT jsonb_agg(tokend_key_json(s) ORDER BY s.created_at, s.id)"
	    "   FROM shown s), '[]'::jsonb))::text,"
	    " CASE WHEN (SELECT count(*) FROM page) > $6::int THEN"
	    "  (SELECT created_at::text || '|' || id FROM shown ORDER BY created_at DESC, id DESC LIMIT 1) END",
	    6, p, 0);
}

/* rate_limit: absent (0), null (1, *text ""), or 1-1000000 (1, *text the
 * number); -1 after answering a bad value. */
static int get_rate_limit(adminreq *ar, char text[16])
{
	json_t *v = json_object_get(ar->body, "rate_limit");
	text[0] = '\0';
	if (!v)
		return 0;
	if (json_is_null(v))
		return 1;
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000) {
		send_error(ar, 400, "invalid_request",
		           "rate_limit must be a whole number of tokens per minute from 1 to 1000000, or null",
		           "rate_limit");
		return -1;
	}
	snprintf(text, 16, "%lld", (long long)json_integer_value(v));
	return 1;
}

static void key_create(adminreq *ar)
{
	static const char *const allowed[] = { "name", "scopes", "audiences", "subject", "expires_at",
	                                       "token_lifetime", "account", "rate_limit", NULL };
	if (only_fields(ar, allowed) != 0)
		return;
	const char *name, *subject, *expires_at, *account = ar->account;
	if (get_string(ar, "name", 1, 100, &name) != 0 || get_string(ar, "subject", 0, 255, &subject) != 0 ||
	    get_string(ar, "expires_at", 0, 64, &expires_at) != 0)
		return;
	/* A subject is never shaped like a key ID or a secret: tokens' sub must
	 * never read as another key's identity (and a secret is never stored). */
	if (subject && (strncmp(subject, TK_KEY_ID_PREFIX, strlen(TK_KEY_ID_PREFIX)) == 0 ||
	                strncmp(subject, TK_SECRET_PREFIX, strlen(TK_SECRET_PREFIX)) == 0))
		return send_error(ar, 400, "invalid_request",
		                  "subject must not start with tk_ or tks_ (reserved for key IDs and secrets)", "subject");
	json_t *acct = json_object_get(ar->body, "account");
	if (acct && !json_is_null(acct)) {
		if (!json_is_string(acct))
			return send_error(ar, 400, "invalid_request", "account must be a string", "account");
		if (strcmp(json_string_value(acct), ar->account) != 0 && !ar->operator)
			return send_forbidden(ar, SCOPE_OPERATOR, "only an operator acts on another account");
		account = json_string_value(acct);
	}
	char *scopes = NULL, *auds = NULL;
	size_t nscopes, nauds;
	if (get_string_array(ar, "scopes", 1, TK_SCOPES_MAX, 1, &scopes, &nscopes) != 0)
		return;
	if (get_string_array(ar, "audiences", 0, TK_MAX_AUDIENCES, 0, &auds, &nauds) != 0) {
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
		return send_error(ar, 400, "invalid_request", d, "scopes");
	}
	const char *p_scopes = own(ar, scopes), *p_auds = own(ar, auds);
	free(scopes);
	free(auds);
	char exp_text[32] = "", life_text[16] = "";
	if (expires_at) {
		int64_t e;
		const char *why;
		if (tk_rfc3339_parse(expires_at, &e, &why) != 0)
			return send_error(ar, 400, "invalid_request", "expires_at must be an RFC 3339 time", "expires_at");
		if (e <= (int64_t)time(NULL))
			return send_error(ar, 400, "invalid_request", "expires_at is in the past", "expires_at");
		tk_rfc3339_format(e, exp_text);
	}
	json_t *lt = json_object_get(ar->body, "token_lifetime");
	if (lt && !json_is_null(lt)) {
		if (!json_is_integer(lt) || json_integer_value(lt) < 1)
			return send_error(ar, 400, "invalid_request", "token_lifetime must be a positive whole number of seconds",
			                  "token_lifetime");
		if (json_integer_value(lt) > ar->w->srv->cfg->token_lifetime_max)
			return send_error(ar, 400, "invalid_request", "token_lifetime is above the server maximum",
			                  "token_lifetime");
		snprintf(life_text, sizeof(life_text), "%lld", (long long)json_integer_value(lt));
	}
	char rate_text[16];
	if (get_rate_limit(ar, rate_text) < 0)
		return;
	const char *idem = evhttp_find_header(evhttp_request_get_input_headers(ar->req), "Idempotency-Key");
	if (idem && check_text(idem, 255))
		return send_error(ar, 400, "invalid_request", "Idempotency-Key must be 1-255 printable characters",
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
	char id[TK_KEY_ID_LEN + 1], hint[TK_HINT_LEN + 1], hash_hex[2 * TK_HASH_LEN + 3];
	unsigned char hash[TK_HASH_LEN];
	if (tk_key_id_generate(id) != TK_KEYFMT_OK || tk_secret_generate(ar->secret) != TK_KEYFMT_OK ||
	    tk_hasher_hash(ar->w->hasher, ar->secret, TK_SECRET_LEN, hash) != 0) {
		tk_wipe(ar->secret, sizeof(ar->secret));
		return send_error(ar, 500, "server_error", "could not generate a key", NULL);
	}
	tk_secret_hint(ar->secret, hint);
	hash_hex[0] = '\\';
	hash_hex[1] = 'x';
	for (int i = 0; i < TK_HASH_LEN; i++)
		snprintf(hash_hex + 2 + 2 * i, 3, "%02x", hash[i]);
	tk_wipe(hash, sizeof(hash));
	/* The caller's own token scopes, operator flag and key expiry go to the
	 * database function, which applies the delegation rules. The key's expiry
	 * is read in the same statement: none = NULL, a missing key = -infinity
	 * (so that a key that vanished refuses rather than widens). */
	const char *p[] = { own(ar, ar->actor), own(ar, ar->address), own(ar, account), own(ar, id), name,
	                    own(ar, hash_hex), own(ar, hint), p_scopes, p_auds, subject,
	                    expires_at ? own(ar, exp_text) : NULL, lt && !json_is_null(lt) ? own(ar, life_text) : NULL,
	                    idem ? own(ar, idem) : NULL, own(ar, fp), rate_text[0] ? own(ar, rate_text) : NULL,
	                    ar->operator ? "t" : "f", own(ar, ar->caller_scope), own(ar, ar->caller_key) };
	tk_wipe(hash_hex, sizeof(hash_hex));
	run(ar,
	    "SELECT tokend_admin_create_key($1, $2, $3, $4, $5, $6::bytea, $7,"
	    " ARRAY(SELECT jsonb_array_elements_text($8::jsonb)), ARRAY(SELECT jsonb_array_elements_text($9::jsonb)),"
	    " $10, $11::timestamptz, $12::int, $13, $14, $15::int, $16::boolean,"
	    " string_to_array(nullif($17, ''), ' ') || '{}'::text[],"
	    " nullif(coalesce((SELECT coalesce(c.expires_at, 'infinity'::timestamptz) FROM api_keys c WHERE c.id = $18),"
	    "  '-infinity'::timestamptz), 'infinity'::timestamptz))::text",
	    18, p, 1);
}

/*
 * The delete guard's view of this instance: the database's last_used_at
 * lags the batched marks, so a use this process knows of (the cached key's
 * last use, this worker's unflushed mark) counts too. Only for a key of the
 * caller's account (or the operator's), still listed: otherwise the
 * database answers as usual (404, or nothing to guard). 1 when it answered
 * 409 recently_used.
 */
static int recently_used_here(adminreq *ar)
{
	tk_key *k = tk_keycache_get(ar->w->srv->cache, ar->id);
	int64_t last = tk_lastused_pending(ar->w, ar->id);
	int mine = 0;
	if (k) {
		mine = k->found && (ar->operator || strcmp(k->account, ar->account) == 0) &&
		       !(k->unusable_reason && strcmp(k->unusable_reason, "key_deleted") == 0);
		int64_t known = atomic_load(&k->last_used_at);
		if (known > last)
			last = known;
		tk_key_release(k);
	}
	if (!mine || last <= (int64_t)time(NULL) - TK_RECENT_USE_WINDOW)
		return 0;
	char when[32], d[200];
	time_t t = (time_t)last;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(d, sizeof(d), "key %s was used in the last 24 hours (last used %s); confirm to delete it",
	         ar->id, when);
	send_error(ar, 409, "recently_used", d, NULL);
	return 1;
}

static void key_action(adminreq *ar, const char *action)
{
	const char *arg = NULL;
	int confirm = 0;
	if (ar->op == OP_KEY_PATCH) {
		static const char *const allowed[] = { "name", "rate_limit", NULL };
		json_t *v;
		const char *k;
		json_object_foreach(ar->body, k, v) {
			if (strcmp(k, "scopes") == 0 || strcmp(k, "audiences") == 0 || strcmp(k, "subject") == 0 ||
			    strcmp(k, "expires_at") == 0 || strcmp(k, "token_lifetime") == 0) {
				char d[160];
				snprintf(d, sizeof(d), "%s cannot change after creation: create a new key and delete this one", k);
				return send_error(ar, 400, "immutable_field", d, k);
			}
		}
		char rate_text[16];
		int set_rate;
		if (only_fields(ar, allowed) != 0 || get_string(ar, "name", 0, 100, &arg) != 0 ||
		    (set_rate = get_rate_limit(ar, rate_text)) < 0)
			return;
		if (!arg && !set_rate)
			return send_error(ar, 400, "invalid_request", "nothing to change: give name or rate_limit", NULL);
		if (tk_key_id_check(ar->id, strlen(ar->id)) != TK_KEYFMT_OK)
			return send_error(ar, 404, "not_found", "no such key", NULL);
		const char *p[] = { own(ar, ar->actor), own(ar, ar->address), ar->operator ? NULL : own(ar, ar->account),
		                    own(ar, ar->id), arg, set_rate ? "t" : "f", rate_text[0] ? own(ar, rate_text) : NULL,
		                    ar->operator ? "t" : "f" };
		return run(ar, "SELECT tokend_admin_patch_key($1, $2, $3, $4, $5, $6::boolean, $7::int, $8::boolean)::text",
		           8, p, 1);
	} else if (ar->op == OP_KEY_REVOKE) {
		static const char *const allowed[] = { "reason", NULL };
		if (ar->body && (only_fields(ar, allowed) != 0 || get_string(ar, "reason", 0, 500, &arg) != 0))
			return;
	} else if (ar->op == OP_KEY_DISABLE || ar->op == OP_KEY_ENABLE) {
		static const char *const none[] = { NULL };
		if (ar->body && only_fields(ar, none) != 0)
			return;
	} else if (ar->op == OP_KEY_DELETE) {
		const char *c = evhttp_find_header(&ar->query, "confirm");
		confirm = c && (strcmp(c, "true") == 0 || strcmp(c, "1") == 0);
	}
	if (tk_key_id_check(ar->id, strlen(ar->id)) != TK_KEYFMT_OK)
		return send_error(ar, 404, "not_found", "no such key", NULL);
	if (ar->op == OP_KEY_DELETE && !confirm && recently_used_here(ar))
		return;
	const char *p[] = { own(ar, ar->actor), own(ar, ar->address), ar->operator ? NULL : own(ar, ar->account),
	                    own(ar, ar->id), action, arg, confirm ? "t" : "f", ar->operator ? "t" : "f" };
	run(ar, "SELECT tokend_admin_key_action($1, $2, $3, $4, $5, $6, $7::boolean, $8::boolean)::text", 8, p, 1);
}

static void start_operation(adminreq *ar)
{
	ar->stage = 1;
	switch (ar->op) {
	case OP_ACCOUNT_SELF: {
		const char *p[] = { own(ar, ar->account) };
		return run(ar, "SELECT tokend_account_json(a)::text FROM accounts a WHERE a.id = $1", 1, p, 0);
	}
	case OP_ACCOUNT_GET: {
		if (!ar->operator && strcmp(ar->id, ar->account) != 0)
			return send_forbidden(ar, SCOPE_OPERATOR, "only an operator reads another account");
		const char *p[] = { own(ar, ar->id) };
		return run(ar, "SELECT tokend_account_json(a)::text FROM accounts a WHERE a.id = $1", 1, p, 0);
	}
	case OP_ACCOUNTS_LIST:
		return run(ar, "SELECT jsonb_build_object('accounts', coalesce(jsonb_agg(tokend_account_json(a) ORDER BY a.id),"
		               " '[]'::jsonb))::text FROM accounts a", 0, NULL, 0);
	case OP_ACCOUNTS_CREATE: {
		static const char *const allowed[] = { "id", "name", "key_limit", NULL };
		const char *id, *name;
		if (only_fields(ar, allowed) != 0 || get_string(ar, "id", 1, 63, &id) != 0 ||
		    get_string(ar, "name", 0, 100, &name) != 0)
			return;
		json_t *lim = json_object_get(ar->body, "key_limit");
		char limtext[16] = "3";
		if (lim && (!json_is_integer(lim) || json_integer_value(lim) < 0 || json_integer_value(lim) > 100000))
			return send_error(ar, 400, "invalid_request", "key_limit must be a whole number from 0 to 100000",
			                  "key_limit");
		if (lim)
			snprintf(limtext, sizeof(limtext), "%lld", (long long)json_integer_value(lim));
		int id_ok = (id[0] >= 'a' && id[0] <= 'z') || (id[0] >= '0' && id[0] <= '9');
		for (const char *q = id; *q && id_ok; q++)
			id_ok = (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '-' || *q == '_';
		if (!id_ok)
			return send_error(ar, 400, "invalid_request", "id must be 1-63 lowercase letters, digits, '-' or "
			                  "'_', starting with a letter or digit", "id");
		const char *p[] = { own(ar, ar->actor), own(ar, ar->address), id, name ? name : "", own(ar, limtext) };
		return run(ar, "WITH b AS (SELECT tokend_admin_begin($1, $2)),"
		               " ins AS (INSERT INTO accounts (id, name, key_limit) SELECT $3, $4, $5::int FROM b RETURNING *)"
		               " SELECT tokend_account_json(ins)::text FROM ins", 5, p, 1);
	}
	case OP_ACCOUNT_PATCH: {
		static const char *const allowed[] = { "name", "key_limit", "disabled", NULL };
		const char *name;
		if (only_fields(ar, allowed) != 0 || get_string(ar, "name", 0, 100, &name) != 0)
			return;
		json_t *lim = json_object_get(ar->body, "key_limit"), *dis = json_object_get(ar->body, "disabled");
		char limtext[16] = "";
		if (lim && (!json_is_integer(lim) || json_integer_value(lim) < 0 || json_integer_value(lim) > 100000))
			return send_error(ar, 400, "invalid_request", "key_limit must be a whole number from 0 to 100000",
			                  "key_limit");
		if (dis && !json_is_boolean(dis))
			return send_error(ar, 400, "invalid_request", "disabled must be true or false", "disabled");
		if (lim)
			snprintf(limtext, sizeof(limtext), "%lld", (long long)json_integer_value(lim));
		const char *p[] = { own(ar, ar->actor), own(ar, ar->address), own(ar, ar->id), name,
		                    lim ? own(ar, limtext) : NULL, dis ? (json_is_true(dis) ? "t" : "f") : NULL };
		return run(ar, "WITH b AS (SELECT tokend_admin_begin($1, $2)),"
		               " up AS (UPDATE accounts a SET name = coalesce($4, a.name),"
		               "  key_limit = coalesce($5::int, a.key_limit),"
		               "  disabled_at = CASE WHEN $6::boolean IS NULL THEN a.disabled_at"
		               "   WHEN $6::boolean THEN coalesce(a.disabled_at, now()) END"
		               "  FROM b WHERE a.id = $3 RETURNING a.*)"
		               " SELECT tokend_account_json(up)::text FROM up", 6, p, 1);
	}
	case OP_SCOPES_LIST:
		return run(ar, "SELECT jsonb_build_object('scopes', coalesce(jsonb_agg(jsonb_build_object('name', name,"
		               " 'description', description, 'created_at', tokend_ts(created_at)) ORDER BY name),"
		               " '[]'::jsonb))::text FROM scopes", 0, NULL, 0);
	case OP_SCOPES_ADD: {
		static const char *const allowed[] = { "name", "description", NULL };
		const char *name, *desc;
		if (only_fields(ar, allowed) != 0 || get_string(ar, "name", 1, TK_SCOPE_TOKEN_MAX, &name) != 0 ||
		    get_string(ar, "description", 0, 500, &desc) != 0)
			return;
		if (!tk_scope_token_valid(name, strlen(name)))
			return send_error(ar, 400, "invalid_request", "name is not a valid scope (RFC 6749 scope-token)", "name");
		const char *p[] = { own(ar, ar->actor), own(ar, ar->address), name, desc ? desc : "" };
		return run(ar, "WITH b AS (SELECT tokend_admin_begin($1, $2)),"
		               " ins AS (INSERT INTO scopes (name, description) SELECT $3, $4 FROM b RETURNING *)"
		               " SELECT jsonb_build_object('name', name, 'description', description,"
		               " 'created_at', tokend_ts(created_at))::text FROM ins", 4, p, 1);
	}
	case OP_KEYS_LIST:
		return keys_list(ar);
	case OP_KEYS_CREATE:
		return key_create(ar);
	case OP_KEY_GET: {
		if (tk_key_id_check(ar->id, strlen(ar->id)) != TK_KEYFMT_OK)
			return send_error(ar, 404, "not_found", "no such key", NULL);
		const char *p[] = { own(ar, ar->id), own(ar, ar->account), ar->operator ? "t" : "f" };
		return run(ar, "SELECT tokend_key_json(k)::text FROM api_keys k WHERE k.id = $1 AND k.deleted_at IS NULL"
		               " AND ($3::boolean OR k.account_id = $2)", 3, p, 0);
	}
	case OP_KEY_PATCH: return key_action(ar, "rename");
	case OP_KEY_DISABLE: return key_action(ar, "disable");
	case OP_KEY_ENABLE: return key_action(ar, "enable");
	case OP_KEY_REVOKE: return key_action(ar, "revoke");
	case OP_KEY_DELETE: return key_action(ar, "delete");
	case OP_AUDIT: {
		const char *key = evhttp_find_header(&ar->query, "key");
		const char *cursor = evhttp_find_header(&ar->query, "cursor");
		const char *account = ar->account;
		if (ar->operator)   /* an operator sees every account's events, or the one asked for */
			account = evhttp_find_header(&ar->query, "account");
		int limit;
		if (parse_limit(ar, &limit) != 0)
			return;
		if (cursor && (strspn(cursor, "0123456789") != strlen(cursor) || strlen(cursor) == 0 || strlen(cursor) > 18))
			return send_error(ar, 400, "invalid_request", "malformed cursor", "cursor");
		if (key && tk_key_id_check(key, strlen(key)) != TK_KEYFMT_OK)
			return send_error(ar, 400, "invalid_request", "key must be a key ID", "key");
		char lim[16];
		snprintf(lim, sizeof(lim), "%d", limit);
		/* An operator may leave the account out (every account); anyone else
		 * sees its own account only, whatever $1 holds ($5: the flag). */
		const char *p[] = { account ? own(ar, account) : NULL, key ? own(ar, key) : NULL,
		                    cursor ? own(ar, cursor) : NULL, own(ar, lim), ar->operator ? "t" : "f" };
		return run(ar,
		           "WITH page AS (SELECT * FROM audit_log l WHERE"
		           "  CASE WHEN $5::boolean THEN ($1::text IS NULL OR l.account_id = $1) ELSE l.account_id = $1 END"
		           "  AND ($2::text IS NULL OR l.key_id = $2) AND ($3::bigint IS NULL OR l.id < $3::bigint)"
		           "  ORDER BY l.id DESC LIMIT $4::int + 1),"
		           " shown AS (SELECT * FROM page ORDER BY id DESC LIMIT $4::int)"
		           " SELECT jsonb_build_object('events', coalesce((SELECT jsonb_agg(jsonb_build_object("
		           "  'id', s.id, 'at', tokend_ts(s.at), 'actor', s.actor, 'action', s.action,"
		           "  'account', s.account_id, 'key', s.key_id, 'address', s.address, 'detail', s.detail)"
		           "  ORDER BY s.id DESC) FROM shown s), '[]'::jsonb))::text,"
		           " CASE WHEN (SELECT count(*) FROM page) > $4::int THEN (SELECT min(id)::text FROM shown) END",
		           5, p, 0);
	}
	case OP_ACCOUNT_SCOPES: {
		static const char *const allowed[] = { "scopes", NULL };
		char *scopes = NULL;
		size_t n;
		if (only_fields(ar, allowed) != 0)
			return;
		if (!json_is_array(json_object_get(ar->body, "scopes")))   /* [] empties the list */
			return send_error(ar, 400, "invalid_request", "scopes must be an array of scope names", "scopes");
		if (get_string_array(ar, "scopes", 0, 1000, 1, &scopes, &n) != 0)
			return;
		const char *p[] = { own(ar, ar->actor), own(ar, ar->address), own(ar, ar->id), own(ar, scopes) };
		free(scopes);
		return run(ar, "SELECT tokend_account_set_scopes($1, $2, $3,"
		               " ARRAY(SELECT jsonb_array_elements_text($4::jsonb)))::text", 4, p, 1);
	}
	}
}

/* ---- results ---- */

static void op_done(tk_dbjob *job)
{
	adminreq *ar = job->arg;
	ar->w->pending--;
	PGresult *r = job->result;
	if (job->status != TK_DBJOB_OK || !r) {
		tk_metric_add(&ar->w->metrics.db_errors, 1);
		evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Retry-After", "1");
		send_error(ar, 503, "temporarily_unavailable", "the database is unavailable; retry shortly", NULL);
		return adminreq_free(ar);
	}
	if (ar->stage == 0) {
		/* The caller's key and token, read now. */
		int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		         strcmp(PQgetvalue(r, 0, 0), "t") == 0 && strcmp(PQgetvalue(r, 0, 1), "f") == 0;
		PQclear(r);
		job->result = NULL;
		if (!ok) {
			send_unauthenticated(ar, "the token's key is no longer usable, or the token was revoked");
			return adminreq_free(ar);
		}
		ar->queued = 0;
		start_operation(ar);
		if (!ar->queued)
			adminreq_free(ar);   /* answered without database work (a refusal) */
		return;
	}
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		send_db_error(ar, r);
		return adminreq_free(ar);
	}
	if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
		send_error(ar, 404, "not_found", "no such resource", NULL);
		return adminreq_free(ar);
	}
	json_t *o = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	if (!o) {
		send_error(ar, 500, "server_error", "internal error", NULL);
		return adminreq_free(ar);
	}
	if ((ar->op == OP_KEYS_LIST || ar->op == OP_AUDIT) && PQnfields(r) > 1) {
		const char *next = PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1);
		if (next && ar->op == OP_KEYS_LIST) {
			char enc[256];
			size_t n = strlen(next);
			if (n < 180) {
				tk_b64url_encode(next, n, enc);
				json_object_set_new(o, "next_cursor", json_string(enc));
			}
		} else {
			json_object_set_new(o, "next_cursor", next ? json_string(next) : json_null());
		}
		if (!json_object_get(o, "next_cursor"))
			json_object_set_new(o, "next_cursor", json_null());
	}
	int status = 200;
	if (ar->op == OP_KEYS_CREATE) {
		json_t *key = json_incref(json_object_get(o, "key"));
		int replayed = json_is_true(json_object_get(o, "replayed"));
		json_decref(o);
		o = key;
		char loc[128];
		snprintf(loc, sizeof(loc), "/admin/v1/keys/%s", json_string_value(json_object_get(key, "client_id")));
		evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Location", loc);
		if (replayed) {
			/* The same request again: the same key, never a second one. The
			 * secret was shown once, in the first response. */
			evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Idempotent-Replayed", "true");
			json_object_set_new(o, "client_secret", json_null());
			json_object_set_new(o, "note", json_string("idempotent replay: the secret was returned by the "
			                                           "first response only; if it was lost, delete this key "
			                                           "and create a new one"));
		} else {
			json_object_set_new(o, "client_secret", json_string(ar->secret));
			tk_wipe(ar->secret, sizeof(ar->secret));
			status = 201;
		}
	} else if (ar->op == OP_ACCOUNTS_CREATE || ar->op == OP_SCOPES_ADD) {
		status = 201;
	}
	tk_log(TK_LOG_INFO, "admin.request", "req", ar->ri.id, "actor", ar->actor, "path",
	       evhttp_request_get_uri(ar->req), NULL);
	send_json(ar, status, o);
	adminreq_free(ar);
}

/* ---- routing and authentication ---- */

static int route(adminreq *ar, enum evhttp_cmd_type cmd, const char *path)
{
	const char *rest = path + strlen("/admin/v1/");
	static const struct { enum evhttp_cmd_type cmd; const char *path; op_t op; need_t need; } fixed[] = {
		{ EVHTTP_REQ_GET, "account", OP_ACCOUNT_SELF, NEED_READ },
		{ EVHTTP_REQ_GET, "accounts", OP_ACCOUNTS_LIST, NEED_OPERATOR },
		{ EVHTTP_REQ_POST, "accounts", OP_ACCOUNTS_CREATE, NEED_OPERATOR },
		{ EVHTTP_REQ_GET, "scopes", OP_SCOPES_LIST, NEED_READ },
		{ EVHTTP_REQ_POST, "scopes", OP_SCOPES_ADD, NEED_OPERATOR },
		{ EVHTTP_REQ_GET, "keys", OP_KEYS_LIST, NEED_READ },
		{ EVHTTP_REQ_POST, "keys", OP_KEYS_CREATE, NEED_WRITE },
		{ EVHTTP_REQ_GET, "audit", OP_AUDIT, NEED_READ },
	};
	int path_known = 0;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		if (strcmp(rest, fixed[i].path) != 0)
			continue;
		path_known = 1;
		if (fixed[i].cmd == cmd) {
			ar->op = fixed[i].op;
			ar->need = fixed[i].need;
			return 0;
		}
	}
	if (path_known)
		return 405;
	/* accounts/{id}, keys/{id}, keys/{id}/(disable|enable|revoke) */
	const char *slash = strchr(rest, '/');
	if (!slash)
		return 404;
	size_t clen = (size_t)(slash - rest);
	const char *id = slash + 1, *sub = strchr(id, '/');
	size_t idlen = sub ? (size_t)(sub - id) : strlen(id);
	if (idlen == 0 || idlen >= sizeof(ar->id))
		return 404;
	memcpy(ar->id, id, idlen);
	ar->id[idlen] = '\0';
	if (clen == 8 && strncmp(rest, "accounts", 8) == 0 && sub && strcmp(sub + 1, "scopes") == 0) {
		if (cmd == EVHTTP_REQ_PUT) { ar->op = OP_ACCOUNT_SCOPES; ar->need = NEED_OPERATOR; return 0; }
		return 405;
	}
	if (clen == 8 && strncmp(rest, "accounts", 8) == 0 && !sub) {
		if (cmd == EVHTTP_REQ_GET) { ar->op = OP_ACCOUNT_GET; ar->need = NEED_READ; return 0; }
		if (cmd == EVHTTP_REQ_PATCH) { ar->op = OP_ACCOUNT_PATCH; ar->need = NEED_OPERATOR; return 0; }
		return 405;
	}
	if (clen == 4 && strncmp(rest, "keys", 4) == 0) {
		if (!sub) {
			if (cmd == EVHTTP_REQ_GET) { ar->op = OP_KEY_GET; ar->need = NEED_READ; return 0; }
			if (cmd == EVHTTP_REQ_PATCH) { ar->op = OP_KEY_PATCH; ar->need = NEED_WRITE; return 0; }
			if (cmd == EVHTTP_REQ_DELETE) { ar->op = OP_KEY_DELETE; ar->need = NEED_WRITE; return 0; }
			return 405;
		}
		static const struct { const char *name; op_t op; } acts[] = {
			{ "disable", OP_KEY_DISABLE }, { "enable", OP_KEY_ENABLE }, { "revoke", OP_KEY_REVOKE },
		};
		for (size_t i = 0; i < 3; i++)
			if (strcmp(sub + 1, acts[i].name) == 0) {
				if (cmd != EVHTTP_REQ_POST)
					return 405;
				ar->op = acts[i].op;
				ar->need = NEED_WRITE;
				return 0;
			}
	}
	return 404;
}

static int has_scope(const char *scope_claim, const char *want)
{
	if (!scope_claim)
		return 0;
	tk_scopes s = { 0 };
	const char *why;
	int ok = tk_scopes_parse(scope_claim, strlen(scope_claim), &s, &why) == 0 && tk_scopes_contains(&s, want);
	tk_scopes_free(&s);
	return ok;
}

extern const char tk_openapi_yaml[];
extern const size_t tk_openapi_yaml_len;

void tk_admin_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	/* The API's own description, public. */
	const char *u = evhttp_request_get_uri(req);
	if (strncmp(u, "/admin/v1/openapi.yaml", 22) == 0 && (u[22] == '\0' || u[22] == '?') &&
	    evhttp_request_get_command(req) == EVHTTP_REQ_GET)
		return tk_http_reply(w, req, ri, 200, "application/yaml", tk_openapi_yaml, tk_openapi_yaml_len);

	adminreq *ar = calloc(1, sizeof(*ar));
	if (!ar) {
		static const char oom[] = "{\"error\":\"server_error\"}";
		return tk_http_reply(w, req, ri, 500, "application/json", oom, sizeof(oom) - 1);
	}
	ar->w = w;
	ar->req = req;
	ar->ri = *ri;
	const char *uri = evhttp_request_get_uri(req);
	char path[256];
	size_t plen = strcspn(uri, "?");
	if (plen >= sizeof(path)) {
		send_error(ar, 404, "not_found", "no such endpoint", NULL);
		return adminreq_free(ar);
	}
	memcpy(path, uri, plen);
	path[plen] = '\0';
	TAILQ_INIT(&ar->query);
	ar->have_query = 1;
	if (uri[plen] == '?' && evhttp_parse_query_str(uri + plen + 1, &ar->query) != 0) {
		send_error(ar, 400, "invalid_request", "malformed query string", NULL);
		return adminreq_free(ar);
	}
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	int rc = route(ar, cmd, path);
	if (rc == 404) {
		send_error(ar, 404, "not_found", "no such endpoint", NULL);
		return adminreq_free(ar);
	}
	if (rc == 405) {
		send_error(ar, 405, "method_not_allowed", "this method is not allowed on this resource", NULL);
		return adminreq_free(ar);
	}

	/* Who is calling: a bearer token of ours, for the admin API (aud = issuer). */
	const char *authz = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (!authz || strncasecmp(authz, "Bearer ", 7) != 0) {
		send_unauthenticated(ar, "a bearer access token is required");
		return adminreq_free(ar);
	}
	const char *token = authz + 7;
	while (*token == ' ')
		token++;
	tk_claims c;
	char err[200];
	int vr = tk_verify(w->keys->admin_verifier, token, strlen(token), &c, err, sizeof(err));
	if (vr != TK_VERIFY_OK || !c.acct || !c.client_id || !c.jti) {
		tk_log(TK_LOG_INFO, "admin.refused", "req", ri->id, "reason",
		       vr != TK_VERIFY_OK ? tk_verify_strerror(vr) : "claims", NULL);
		if (vr == TK_VERIFY_OK)
			tk_claims_release(&c);
		send_unauthenticated(ar, "the bearer token is not valid");
		return adminreq_free(ar);
	}
	ar->operator = has_scope(c.scope, SCOPE_OPERATOR);
	ar->can_write = ar->operator || has_scope(c.scope, SCOPE_WRITE);
	int can_read = ar->can_write || has_scope(c.scope, SCOPE_READ);
	snprintf(ar->account, sizeof(ar->account), "%s", c.acct);
	snprintf(ar->caller_key, sizeof(ar->caller_key), "%s", c.client_id);
	snprintf(ar->caller_jti, sizeof(ar->caller_jti), "%s", c.jti);
	snprintf(ar->caller_scope, sizeof(ar->caller_scope), "%s", c.scope ? c.scope : "");
	tk_claims_release(&c);
	snprintf(ar->actor, sizeof(ar->actor), "admin:%s", ar->caller_key);
	ar->ri.client_id = ar->caller_key;
	tk_http_client(w, req, ar->address, sizeof(ar->address));
	const char *missing = NULL;
	if (ar->need == NEED_OPERATOR && !ar->operator)
		missing = SCOPE_OPERATOR;
	else if (ar->need == NEED_WRITE && !ar->can_write)
		missing = SCOPE_WRITE;
	else if (ar->need == NEED_READ && !can_read)
		missing = SCOPE_READ;
	if (missing) {
		char d[120];
		snprintf(d, sizeof(d), "this request needs the scope %s", missing);
		send_forbidden(ar, missing, d);
		return adminreq_free(ar);
	}

	/* The body, for POST and PATCH: a JSON object, strict. */
	if (cmd == EVHTTP_REQ_POST || cmd == EVHTTP_REQ_PATCH || cmd == EVHTTP_REQ_PUT) {
		struct evbuffer *b = evhttp_request_get_input_buffer(req);
		size_t len = evbuffer_get_length(b);
		if (len > ADMIN_BODY_MAX) {
			send_error(ar, 413, "invalid_request", "the body is too large", NULL);
			return adminreq_free(ar);
		}
		if (len > 0 || ar->op == OP_KEYS_CREATE || ar->op == OP_KEY_PATCH || ar->op == OP_ACCOUNTS_CREATE ||
		    ar->op == OP_ACCOUNT_PATCH || ar->op == OP_SCOPES_ADD || ar->op == OP_ACCOUNT_SCOPES) {
			const char *data = len ? (const char *)evbuffer_pullup(b, -1) : "";
			const char *why = NULL;
			if (tk_input_json_body(data, len, &ar->body, &why) != 0) {
				send_error(ar, 400, "invalid_request", why, NULL);
				return adminreq_free(ar);
			}
		}
	}

	/* Is the token's key still usable, and the token not revoked? Read now. */
	const char *p[] = { own(ar, ar->caller_key), own(ar, ar->caller_jti) };
	ar->queued = 0;
	run(ar, TK_SQL_TOKEN_STATE, 2, p, 0);
	if (!ar->queued)
		adminreq_free(ar);
}
