/*
 * api.c - the admin REST API under /admin/v1/: the request and its stages.
 *
 * Authentication: a bearer access token issued by this tokend, verified with
 * the same library code a resource server uses (tk_verify: signature, issuer,
 * typ, times, and aud containing the issuer), whose key is still usable and
 * whose jti is not revoked (read from the database on every request, so a
 * key disabled, revoked or deleted mid-session is refused at once).
 * Or, unless admin_api_key_auth is off, an API key sent directly as
 * `Authorization: Bearer <key-id>:<secret>` or `X-API-Key: <key-id>:<secret>`
 * (a JWT never holds ':'), authenticated by the token endpoint's own code
 * (http/keyauth.c: format and checksums first, the key from the cache or the
 * database without blocking, constant-time compares, the same failure
 * limits, key and account state); its scopes then count as those of a token
 * it could get without asking for scopes, and a key whose tokens could not
 * carry the issuer as audience is refused as such a token is. Both headers
 * present must carry the same credential (400 otherwise). Every wrong key,
 * and a key when key authentication is off, gets the wrong token's 401.
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
 *
 * This file: the request object, routing (route.c's table), authentication
 * (stage 0: the token verified here, its key and jti read from the
 * database), authorisation (the route's scope), the body and query, the
 * dispatch to keys.c and accounts.c, the database call and its answer, and
 * the OpenAPI document. Only the path is ever logged, never the query.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <libpq-fe.h>

#include <tokend/crypto.h>
#include <tokend/scope.h>
#include <tokend/verify.h>

#include "admin.h"
#include "admin_int.h"
#include "input.h"
#include "log.h"
#include "openapi.h"
#include "server.h"

static void adminreq_free(tk_adminreq *ar)
{
	if (ar->auth.timer)
		event_free(ar->auth.timer);
	tk_wipe(ar->auth.digest, sizeof(ar->auth.digest));
	json_decref(ar->body);
	if (ar->have_query)
		evhttp_clear_headers(&ar->query);
	for (int i = 0; i < ar->nown; i++) {
		tk_wipe(ar->own[i], strlen(ar->own[i]));   /* job parameters: wiped, whatever they held */
		free(ar->own[i]);
	}
	tk_wipe(ar->secret, sizeof(ar->secret));
	tk_wipe(ar->hash_hex, sizeof(ar->hash_hex));
	if (ar->job.result)
		PQclear(ar->job.result);
	free(ar);
}

/* ---- responses ---- */

void tk_admin_send_json(tk_adminreq *ar, int status, json_t *o)
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

void tk_admin_send_error(tk_adminreq *ar, int status, const char *error, const char *description,
                         const char *field)
{
	json_t *o = json_pack("{s:s, s:s}", "error", error, "error_description", description);
	if (field)
		json_object_set_new(o, "field", json_string(field));
	tk_admin_send_json(ar, status, o);
}

/* The answer to every wrong token, and to every wrong API key sent directly. */
#define BAD_TOKEN "the bearer token is not valid"

static void send_unauthenticated(tk_adminreq *ar, const char *description)
{
	evhttp_add_header(evhttp_request_get_output_headers(ar->req), "WWW-Authenticate",
	                  "Bearer realm=\"tokend-admin\", error=\"invalid_token\"");
	tk_admin_send_error(ar, 401, "invalid_token", description, NULL);
}

void tk_admin_send_forbidden(tk_adminreq *ar, const char *scope, const char *description)
{
	char www[160];
	snprintf(www, sizeof(www), "Bearer realm=\"tokend-admin\", error=\"insufficient_scope\", scope=\"%s\"", scope);
	evhttp_add_header(evhttp_request_get_output_headers(ar->req), "WWW-Authenticate", www);
	json_t *o = json_pack("{s:s, s:s, s:s}", "error", "insufficient_scope", "error_description", description,
	                      "scope", scope);
	tk_admin_send_json(ar, 403, o);
}

/* ---- the database call ---- */

/* See admin_int.h: a NULL never stands in for a value that could not be
 * copied (a NULL account would otherwise widen a query). */
const char *tk_admin_own(tk_adminreq *ar, const char *s)
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

void tk_admin_run(tk_adminreq *ar, const char *sql, int nparams, const char *const *params, int writes)
{
	if (ar->oom || nparams > TK_DBJOB_MAX_PARAMS) {
		tk_log(TK_LOG_ERROR, "admin.oom", "req", ar->ri.id, NULL);
		tk_admin_send_error(ar, 500, "server_error", "internal error", NULL);
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
		tk_admin_send_error(ar, 503, "temporarily_unavailable", "the database is unavailable; retry shortly", NULL);
		return;   /* not queued: the caller frees */
	}
	ar->queued = 1;
	ar->w->pending++;
}

/* Map a database refusal (HINT) to an API error. */
static void send_db_error(tk_adminreq *ar, PGresult *r)
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
	             strcmp(hint, "forbidden_scope") == 0 || strcmp(hint, "scopes_too_long") == 0 ||
	             strcmp(hint, "scope_not_public") == 0))
		snprintf(field, sizeof(field), "scopes");
	else if (hint && strcmp(hint, "outlives_creator") == 0)
		snprintf(field, sizeof(field), "expires_at");
	else if (hint && strcmp(hint, "subject_reserved") == 0)
		snprintf(field, sizeof(field), "subject");
	else if (hint && (strcmp(hint, "unknown_role") == 0 || strcmp(hint, "role_and_scopes") == 0))
		snprintf(field, sizeof(field), "role");
	else if (hint && strcmp(hint, "unknown_member") == 0)
		snprintf(field, sizeof(field), "member");
	else if (hint && strcmp(hint, "invalid_claims") == 0)
		snprintf(field, sizeof(field), "claims");
	else if (hint && strcmp(hint, "invalid_environment") == 0)
		snprintf(field, sizeof(field), "environment");
	else if (hint && strcmp(hint, "invalid_origins") == 0)
		snprintf(field, sizeof(field), "allowed_origins");
	else if (hint && strcmp(hint, "overlap") == 0)
		snprintf(field, sizeof(field), "overlap_seconds");
	if (strcmp(field, "revoke_reason") == 0)
		snprintf(field, sizeof(field), "reason");
	if (field[0] && state && strcmp(state, "23514") == 0) {
		char d[120];
		snprintf(d, sizeof(d), "%s is not valid", field);
		return tk_admin_send_error(ar, 400, "invalid_request", d, field);
	}
	static const struct { const char *hint; int status; const char *error; } map[] = {
		{ "not_found", 404, "not_found" },
		{ "revoked", 409, "revoked" },
		{ "expired", 409, "expired" },
		{ "overlap", 400, "invalid_request" },
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
		{ "unknown_role", 400, "invalid_request" },
		{ "role_and_scopes", 400, "invalid_request" },
		{ "unknown_member", 400, "invalid_request" },
		{ "member_inactive", 409, "member_inactive" },
		{ "invalid_claims", 400, "invalid_request" },
		{ "invalid_environment", 400, "invalid_request" },
		{ "scope_not_public", 400, "invalid_scope" },
		{ "invalid_origins", 400, "invalid_request" },
		{ "conflict", 409, "conflict" },
		{ "tokend_revoked", 409, "revoked" },
		{ "tokend_deleted", 404, "not_found" },
	};
	for (size_t i = 0; hint && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(hint, map[i].hint) == 0)
			return tk_admin_send_error(ar, map[i].status, map[i].error, msg, field[0] ? field : NULL);
	if (state && strcmp(state, "23505") == 0)
		return tk_admin_send_error(ar, 409, "conflict", "it already exists", NULL);
	if (state && (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0))
		return tk_admin_send_error(ar, 400, "invalid_request", msg, NULL);
	if (state && strcmp(state, "57014") == 0) {   /* statement timeout */
		evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Retry-After", "1");
		return tk_admin_send_error(ar, 503, "temporarily_unavailable", "the database did not answer in time", NULL);
	}
	tk_log(TK_LOG_ERROR, "admin.db_error", "req", ar->ri.id, "detail", msg, NULL);
	tk_admin_send_error(ar, 500, "server_error", "internal error", NULL);
}
/* ---- results ---- */

/* Each operation's function (route.h's tk_admin_op -> keys.c, accounts.c). */
static const tk_admin_op_fn operations[TK_ADMIN_OP_COUNT] = {
	[TK_ADMIN_OP_ACCOUNT_SELF] = tk_admin_account_self,
	[TK_ADMIN_OP_ACCOUNTS_LIST] = tk_admin_accounts_list,
	[TK_ADMIN_OP_ACCOUNTS_CREATE] = tk_admin_account_create,
	[TK_ADMIN_OP_ACCOUNT_GET] = tk_admin_account_get,
	[TK_ADMIN_OP_ACCOUNT_PATCH] = tk_admin_account_patch,
	[TK_ADMIN_OP_ACCOUNT_SCOPES] = tk_admin_account_scopes,
	[TK_ADMIN_OP_SCOPES_LIST] = tk_admin_scopes_list,
	[TK_ADMIN_OP_SCOPES_ADD] = tk_admin_scope_add,
	[TK_ADMIN_OP_KEYS_LIST] = tk_admin_keys_list,
	[TK_ADMIN_OP_KEYS_CREATE] = tk_admin_key_create,
	[TK_ADMIN_OP_KEY_GET] = tk_admin_key_get,
	[TK_ADMIN_OP_KEY_PATCH] = tk_admin_key_action,
	[TK_ADMIN_OP_KEY_DISABLE] = tk_admin_key_action,
	[TK_ADMIN_OP_KEY_ENABLE] = tk_admin_key_action,
	[TK_ADMIN_OP_KEY_REVOKE] = tk_admin_key_action,
	[TK_ADMIN_OP_KEY_DELETE] = tk_admin_key_action,
	[TK_ADMIN_OP_KEY_ROTATE] = tk_admin_key_rotate,
	[TK_ADMIN_OP_AUDIT] = tk_admin_audit,
	[TK_ADMIN_OP_ROLES_LIST] = tk_admin_roles_list,
	[TK_ADMIN_OP_ROLES_ADD] = tk_admin_role_put,
	[TK_ADMIN_OP_ROLE_GET] = tk_admin_role_get,
	[TK_ADMIN_OP_ROLE_PATCH] = tk_admin_role_put,
	[TK_ADMIN_OP_MEMBERS_LIST] = tk_admin_members_list,
	[TK_ADMIN_OP_MEMBERS_ADD] = tk_admin_member_add,
	[TK_ADMIN_OP_MEMBER_GET] = tk_admin_member_get,
	[TK_ADMIN_OP_MEMBER_DEACTIVATE] = tk_admin_member_deactivate,
};

/* Stage 1: the operation (it answers, or submits its one job). */
static void start_operation(tk_adminreq *ar)
{
	ar->stage = 1;
	if ((unsigned)ar->op >= TK_ADMIN_OP_COUNT || !operations[ar->op])
		return tk_admin_send_error(ar, 500, "server_error", "internal error", NULL);
	operations[ar->op](ar);
}

static void op_done(tk_dbjob *job)
{
	tk_adminreq *ar = job->arg;
	ar->w->pending--;
	PGresult *r = job->result;
	if (job->status != TK_DBJOB_OK || !r) {
		tk_metric_add(&ar->w->metrics.db_errors, 1);
		evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Retry-After", "1");
		tk_admin_send_error(ar, 503, "temporarily_unavailable", "the database is unavailable; retry shortly", NULL);
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
	if (ar->op == TK_ADMIN_OP_KEY_PATCH || ar->op == TK_ADMIN_OP_KEY_DISABLE ||
	    ar->op == TK_ADMIN_OP_KEY_ENABLE || ar->op == TK_ADMIN_OP_KEY_REVOKE ||
	    ar->op == TK_ADMIN_OP_KEY_DELETE || ar->op == TK_ADMIN_OP_KEY_ROTATE) {
		/* Committed: this instance forgets the key now, before it answers, so
		 * that a token request right after the answer sees the change here at
		 * once (other instances follow by NOTIFY). */
		tk_keycache_invalidate(ar->w->srv->cache, ar->id);
	}

	if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
		tk_admin_send_error(ar, 404, "not_found", "no such resource", NULL);
		return adminreq_free(ar);
	}
	json_t *o = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	if (!o) {
		tk_admin_send_error(ar, 500, "server_error", "internal error", NULL);
		return adminreq_free(ar);
	}
	if (ar->op == TK_ADMIN_OP_MEMBER_DEACTIVATE && json_is_string(json_object_get(o, "account")))
		/* Its keys were disabled: forgotten here before the answer. */
		tk_keycache_invalidate_account(ar->w->srv->cache, json_string_value(json_object_get(o, "account")));
	if ((ar->op == TK_ADMIN_OP_KEYS_LIST || ar->op == TK_ADMIN_OP_AUDIT) && PQnfields(r) > 1) {
		const char *next = PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1);
		if (next && ar->op == TK_ADMIN_OP_KEYS_LIST) {
			char enc[832];
			size_t n = strlen(next);
			if (n < 620) {
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
	if (ar->op == TK_ADMIN_OP_KEYS_CREATE) {
		json_t *key = tk_admin_key_created(ar, o, &status);
		json_decref(o);
		if (!key) {
			tk_admin_send_error(ar, 500, "server_error", "internal error", NULL);
			return adminreq_free(ar);
		}
		o = key;
	} else if (ar->op == TK_ADMIN_OP_ACCOUNTS_CREATE || ar->op == TK_ADMIN_OP_SCOPES_ADD ||
	           ar->op == TK_ADMIN_OP_ROLES_ADD || ar->op == TK_ADMIN_OP_MEMBERS_ADD) {
		status = 201;
	} else if (ar->op == TK_ADMIN_OP_KEY_ROTATE) {
		/* The new secret, shown once (this answer only). */
		json_object_set_new(o, "client_secret", json_string(ar->secret));
		tk_wipe(ar->secret, sizeof(ar->secret));
	}
	/* The path only: a query string may carry what must not be logged
	 * (the same rule as http/reply.c's request line). */
	tk_log(TK_LOG_INFO, "admin.request", "req", ar->ri.id, "actor", ar->actor, "path", ar->path, NULL);
	tk_admin_send_json(ar, status, o);
	adminreq_free(ar);
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

/*
 * The caller is known (ar->account, caller_key, caller_scope, operator,
 * can_write, can_read): the route's scope, the body, then the token's state
 * (stage 0) or, for a key sent directly, the operation. Returns 1 when a job
 * is out (op_done answers and frees), 0 when answered (the caller frees).
 */
static int authorised(tk_adminreq *ar)
{
	struct evhttp_request *req = ar->req;
	tk_worker *w = ar->w;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	snprintf(ar->actor, sizeof(ar->actor), "admin:%s", ar->caller_key);
	ar->ri.client_id = ar->caller_key;
	tk_http_client(w, req, ar->address, sizeof(ar->address));
	const char *missing = NULL;
	if (ar->need == TK_ADMIN_NEED_OPERATOR && !ar->operator)
		missing = TK_ADMIN_SCOPE_OPERATOR;
	else if (ar->need == TK_ADMIN_NEED_WRITE && !ar->can_write)
		missing = TK_ADMIN_SCOPE_WRITE;
	else if (ar->need == TK_ADMIN_NEED_READ && !ar->can_read)
		missing = TK_ADMIN_SCOPE_READ;
	if (missing) {
		char d[120];
		snprintf(d, sizeof(d), "this request needs the scope %s", missing);
		tk_admin_send_forbidden(ar, missing, d);
		return 0;
	}

	/* The body, for POST and PATCH: a JSON object, strict. */
	if (cmd == EVHTTP_REQ_POST || cmd == EVHTTP_REQ_PATCH || cmd == EVHTTP_REQ_PUT) {
		struct evbuffer *b = evhttp_request_get_input_buffer(req);
		size_t len = evbuffer_get_length(b);
		if (len > TK_ADMIN_BODY_MAX) {
			tk_admin_send_error(ar, 413, "invalid_request", "the body is too large", NULL);
			return 0;
		}
		if (len > 0 || ar->op == TK_ADMIN_OP_KEYS_CREATE || ar->op == TK_ADMIN_OP_KEY_PATCH ||
		    ar->op == TK_ADMIN_OP_ACCOUNTS_CREATE || ar->op == TK_ADMIN_OP_ACCOUNT_PATCH ||
		    ar->op == TK_ADMIN_OP_SCOPES_ADD || ar->op == TK_ADMIN_OP_ACCOUNT_SCOPES ||
		    ar->op == TK_ADMIN_OP_ROLES_ADD || ar->op == TK_ADMIN_OP_ROLE_PATCH || ar->op == TK_ADMIN_OP_MEMBERS_ADD ||
		    ar->op == TK_ADMIN_OP_KEY_ROTATE) {
			const char *data = len ? (const char *)evbuffer_pullup(b, -1) : "";
			const char *why = NULL;
			if (tk_input_json_body(data, len, &ar->body, &why) != 0) {
				tk_admin_send_error(ar, 400, "invalid_request", why, NULL);
				return 0;
			}
		}
	}

	ar->queued = 0;
	if (ar->by_key) {
		/* The key's state was checked as the token endpoint checks it. */
		start_operation(ar);
		return ar->queued;
	}
	/* Is the token's key still usable, and the token not revoked? Read now. */
	const char *p[] = { tk_admin_own(ar, ar->caller_key), tk_admin_own(ar, ar->caller_jti) };
	tk_admin_run(ar, TK_SQL_TOKEN_STATE, 2, p, 0);
	return ar->queued;
}

/* ---- an API key sent directly (http/keyauth.h does the authentication) ---- */

#define ADMINREQ_OF(a) ((tk_adminreq *)((char *)(a) - offsetof(tk_adminreq, auth)))

static void key_auth_free(tk_authreq *a)
{
	adminreq_free(ADMINREQ_OF(a));
}

/* The admin API's answers to the core's refusals: a wrong key is a wrong token. */
static void key_auth_refuse(tk_authreq *a, int status, int wait)
{
	tk_adminreq *ar = ADMINREQ_OF(a);
	struct evkeyvalq *out = evhttp_request_get_output_headers(ar->req);
	char ra[16];
	ar->ri.client_id = a->ri.client_id;   /* a well-formed key ID, for the access log */
	switch (status) {
	case 401:
		send_unauthenticated(ar, BAD_TOKEN);
		break;
	case 429:
		snprintf(ra, sizeof(ra), "%d", wait);
		evhttp_add_header(out, "Retry-After", ra);
		tk_admin_send_error(ar, 429, "too_many_requests", "too many failed authentications; retry later", NULL);
		break;
	case 503:
		evhttp_add_header(out, "Retry-After", "1");
		tk_admin_send_error(ar, 503, "temporarily_unavailable", "the database is unavailable; retry shortly", NULL);
		break;
	default:
		tk_admin_send_error(ar, 500, "server_error", "internal error", NULL);
		break;
	}
}

/* Could a token of `k` carry the issuer as audience (what the admin API's
 * tokens need)? A key without audiences gets the default audience. */
static int key_reaches_admin(const tk_server *srv, const tk_apikey *k)
{
	if (k->naud == 0)
		return strcmp(srv->default_audience, srv->cfg->issuer) == 0;
	for (size_t i = 0; i < k->naud; i++)
		if (strcmp(k->aud[i], srv->cfg->issuer) == 0)
			return 1;
	return 0;
}

/* The key and its secret are right and the key is usable: its scopes count
 * as those of a token it would get without asking for scopes. */
static int key_auth_ok(tk_authreq *a, const tk_apikey *k)
{
	tk_adminreq *ar = ADMINREQ_OF(a);
	ar->ri.client_id = a->ri.client_id;
	if (!key_reaches_admin(ar->w->srv, k)) {
		tk_log(TK_LOG_INFO, "admin.refused", "req", ar->ri.id, "client_id", k->id, "reason", "audience", NULL);
		send_unauthenticated(ar, BAD_TOKEN);
		return 0;
	}
	char *scope = tk_scopes_join(k->scopes);
	if (!scope || strlen(scope) >= sizeof(ar->caller_scope)) {
		/* Never fewer checks for a scope set that could not be copied. */
		free(scope);
		tk_log(TK_LOG_ERROR, "admin.oom", "req", ar->ri.id, NULL);
		tk_admin_send_error(ar, 500, "server_error", "internal error", NULL);
		return 0;
	}
	ar->by_key = 1;
	ar->operator = has_scope(scope, TK_ADMIN_SCOPE_OPERATOR);
	ar->can_write = ar->operator || has_scope(scope, TK_ADMIN_SCOPE_WRITE);
	ar->can_read = ar->can_write || has_scope(scope, TK_ADMIN_SCOPE_READ);
	snprintf(ar->account, sizeof(ar->account), "%s", k->account);
	snprintf(ar->caller_key, sizeof(ar->caller_key), "%s", k->id);
	snprintf(ar->caller_scope, sizeof(ar->caller_scope), "%s", scope);
	free(scope);
	tk_lastused_mark(ar->w, k);
	return authorised(ar);
}

/* Authenticate `cred` ("<key-id>:<secret>", still in the request's headers). */
static void key_auth_start(tk_adminreq *ar, const char *cred)
{
	tk_authreq *a = &ar->auth;
	char id[TK_KEY_ID_MAX + 1];
	size_t idlen = strcspn(cred, ":");
	int id_fits = idlen <= TK_KEY_ID_MAX;
	if (id_fits) {
		memcpy(id, cred, idlen);
		id[idlen] = '\0';
	}
	a->w = ar->w;
	a->req = tk_req_ev(ar->req);
	a->ri = ar->ri;
	a->ri.client_id = NULL;
	a->on_key = key_auth_ok;
	a->refuse = key_auth_refuse;
	a->on_free = key_auth_free;
	tk_keyauth_begin(a);
	tk_keyauth_run(a, id_fits ? id : NULL, cred + idlen + 1);
}

void tk_admin_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	/* The API's own description, public. */
	const char *u = evhttp_request_get_uri(req);
	if (strncmp(u, "/admin/v1/openapi.yaml", 22) == 0 && (u[22] == '\0' || u[22] == '?') &&
	    evhttp_request_get_command(req) == EVHTTP_REQ_GET) {
		/* With this server's issuer as the server URL and the token URL. */
		size_t n = 0;
		char *doc = tk_openapi_render(tk_openapi_yaml, tk_openapi_yaml_len, w->srv->cfg->issuer, &n);
		if (!doc) {
			tk_log(TK_LOG_ERROR, "admin.openapi_failed", "req", ri->id,
			       "detail", "out of memory, or docs/openapi.yaml lost its server or tokenUrl line", NULL);
			static const char err[] = "{\"error\":\"server_error\"}";
			return tk_http_reply(w, req, ri, 500, "application/json", err, sizeof(err) - 1);
		}
		tk_http_reply(w, req, ri, 200, "application/yaml", doc, n);
		free(doc);
		return;
	}

	tk_adminreq *ar = calloc(1, sizeof(*ar));
	if (!ar) {
		static const char oom[] = "{\"error\":\"server_error\"}";
		return tk_http_reply(w, req, ri, 500, "application/json", oom, sizeof(oom) - 1);
	}
	ar->w = w;
	ar->req = req;
	ar->ri = *ri;
	const char *uri = evhttp_request_get_uri(req);
	size_t plen = strcspn(uri, "?");
	if (plen >= sizeof(ar->path)) {
		tk_admin_send_error(ar, 404, "not_found", "no such endpoint", NULL);
		return adminreq_free(ar);
	}
	memcpy(ar->path, uri, plen);
	ar->path[plen] = '\0';
	TAILQ_INIT(&ar->query);
	ar->have_query = 1;
	if (uri[plen] == '?' && evhttp_parse_query_str(uri + plen + 1, &ar->query) != 0) {
		tk_admin_send_error(ar, 400, "invalid_request", "malformed query string", NULL);
		return adminreq_free(ar);
	}
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	tk_admin_match m;
	int rc = tk_admin_route_match(cmd, ar->path, &m);
	if (rc == 404) {
		tk_admin_send_error(ar, 404, "not_found", "no such endpoint", NULL);
		return adminreq_free(ar);
	}
	if (rc == 405) {
		tk_admin_send_error(ar, 405, "method_not_allowed", "this method is not allowed on this resource", NULL);
		return adminreq_free(ar);
	}
	ar->op = m.op;
	ar->need = m.need;
	memcpy(ar->id, m.id, sizeof(ar->id));

	/* Who is calling: a bearer token of ours, for the admin API (aud = issuer),
	 * or an API key sent directly (<key-id>:<secret>; a JWT holds no ':'). */
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *authz = evhttp_find_header(in, "Authorization");
	const char *xkey = evhttp_find_header(in, "X-API-Key");
	if (tk_header_count(in, "Authorization") > 1 || tk_header_count(in, "X-API-Key") > 1) {
		tk_admin_send_error(ar, 400, "invalid_request", "more than one Authorization or X-API-Key header", NULL);
		return adminreq_free(ar);
	}
	const char *bearer = NULL;
	if (authz && strncasecmp(authz, "Bearer ", 7) == 0) {
		bearer = authz + 7;
		while (*bearer == ' ')
			bearer++;
	}
	if (xkey && authz && (!bearer || strcmp(bearer, xkey) != 0)) {
		tk_admin_send_error(ar, 400, "invalid_request",
		                    "Authorization and X-API-Key carry different credentials; send one", NULL);
		return adminreq_free(ar);
	}
	if (xkey || (bearer && strchr(bearer, ':'))) {
		const char *cred = xkey ? xkey : bearer;
		if (!w->srv->cfg->admin_api_key_auth || !strchr(cred, ':')) {
			tk_log(TK_LOG_INFO, "admin.refused", "req", ri->id, "reason",
			       strchr(cred, ':') ? "api_key_auth_off" : "malformed_api_key", NULL);
			send_unauthenticated(ar, BAD_TOKEN);
			return adminreq_free(ar);
		}
		return key_auth_start(ar, cred);   /* answers and frees, now or later */
	}
	if (!bearer) {
		send_unauthenticated(ar, "a bearer access token is required");
		return adminreq_free(ar);
	}
	const char *token = bearer;
	tk_claims c;
	char err[200];
	int vr = tk_verify(w->keys->admin_verifier, token, strlen(token), &c, err, sizeof(err));
	if (vr != TK_VERIFY_OK || !c.acct || !c.client_id || !c.jti) {
		tk_log(TK_LOG_INFO, "admin.refused", "req", ri->id, "reason",
		       vr != TK_VERIFY_OK ? tk_verify_strerror(vr) : "claims", NULL);
		if (vr == TK_VERIFY_OK)
			tk_claims_release(&c);
		send_unauthenticated(ar, BAD_TOKEN);
		return adminreq_free(ar);
	}
	ar->operator = has_scope(c.scope, TK_ADMIN_SCOPE_OPERATOR);
	ar->can_write = ar->operator || has_scope(c.scope, TK_ADMIN_SCOPE_WRITE);
	ar->can_read = ar->can_write || has_scope(c.scope, TK_ADMIN_SCOPE_READ);
	snprintf(ar->account, sizeof(ar->account), "%s", c.acct);
	snprintf(ar->caller_key, sizeof(ar->caller_key), "%s", c.client_id);
	snprintf(ar->caller_jti, sizeof(ar->caller_jti), "%s", c.jti);
	snprintf(ar->caller_scope, sizeof(ar->caller_scope), "%s", c.scope ? c.scope : "");
	tk_claims_release(&c);
	if (!authorised(ar))
		adminreq_free(ar);
}
