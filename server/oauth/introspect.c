/*
 * introspect.c - POST /oauth2/introspect (RFC 7662) and POST /oauth2/revoke
 * (RFC 7009).
 *
 * Introspection: the caller authenticates with the credentials of a key
 * holding the scope tokend:introspect (Basic or body), or with a bearer
 * token carrying it whose aud contains tokend's issuer. A token is active when it verifies (signature, issuer,
 * typ, times), belongs to the caller's account, its key may be used now, and
 * its jti was not revoked. Key state and revocation are read from the
 * database for every introspection (never from the cache), so a change is
 * visible at once on every instance; if the database cannot answer, 503.
 *
 * Revocation: a client revokes its own tokens; the jti is kept in
 * revoked_tokens until the token expires. An invalid, expired or unknown
 * token gets 200 (RFC 7009 §2.2); a token of another client is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include <tokend/scope.h>
#include <tokend/verify.h>

#include "auth.h"
#include "log.h"
#include "oauth.h"
#include "server.h"

#define INTROSPECT_SCOPE "tokend:introspect"

typedef struct introreq {
	tk_authreq auth;                  /* first member (see auth.h) */
	char *token;                      /* the token asked about (wiped on free) */
	char caller_account[64];
	char caller_key[TK_KEY_ID_MAX + 1];
	char caller_jti[72];              /* bearer caller: its own token's jti */
	int bearer;
	int revoke;                       /* 1: /oauth2/revoke */
	tk_claims claims;                 /* of `token`, once verified */
	tk_dbjob job;                     /* target token state / revocation */
	tk_dbjob job2;                    /* bearer caller's own token state */
	int jobs_pending;
	int failed;
} introreq;

static void introreq_free(tk_authreq *ar)
{
	introreq *ir = (introreq *)ar;
	if (ir->token) {
		tk_wipe(ir->token, strlen(ir->token));
		free(ir->token);
	}
	tk_claims_release(&ir->claims);
	free(ir);
}

static void reply_json(tk_authreq *ar, int status, json_t *o)
{
	char *body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	tk_req_add_header(ar->req, "Cache-Control", "no-store");
	tk_req_add_header(ar->req, "Pragma", "no-cache");
	tk_req_reply(ar->w, ar->req, &ar->ri, status, "application/json", body, body ? strlen(body) : 0);
	free(body);
}

static void inactive(tk_authreq *ar, const char *why)
{
	if (tk_log_enabled(TK_LOG_DEBUG))
		tk_log(TK_LOG_DEBUG, "introspect.inactive", "req", ar->ri.id, "reason", why, NULL);
	reply_json(ar, 200, json_pack("{s:b}", "active", 0));
}

static void answer_active(introreq *ir)
{
	json_t *c = ir->claims.json;
	json_t *o = json_object();
	json_object_set_new(o, "active", json_true());
	static const char *const copy[] = { "scope", "client_id", "sub", "aud", "iss", "exp", "iat",
	                                    "nbf", "jti", "acct" };
	for (size_t i = 0; i < sizeof(copy) / sizeof(copy[0]); i++) {
		json_t *v = json_object_get(c, copy[i]);
		if (v)
			json_object_set(o, copy[i], v);
	}
	json_object_set_new(o, "token_type", json_string("Bearer"));
	reply_json(&ir->auth, 200, o);
}

static void jobs_done(tk_dbjob *job)
{
	introreq *ir = job->arg;
	tk_authreq *ar = &ir->auth;
	if (job->status != TK_DBJOB_OK)
		ir->failed = 1;
	if (--ir->jobs_pending > 0)
		return;
	ar->w->pending--;
	if (ir->failed) {
		tk_auth_unavailable(ar->w, ar->req, &ar->ri);
	} else if (ir->revoke) {
		tk_log(TK_LOG_INFO, "token.revoked", "req", ar->ri.id, "client_id", ar->ri.client_id,
		       "jti", ir->job.jti, NULL);
		reply_json(ar, 200, json_object());
	} else if (ir->bearer && (!ir->job2.key_active || ir->job2.jti_revoked)) {
		/* The caller's own token is no longer good. */
		tk_req_add_header(ar->req, "WWW-Authenticate",
		                  "Bearer error=\"invalid_token\"");
		tk_req_oauth_error(ar->w, ar->req, &ar->ri, 401, "invalid_token",
		                   "the bearer token is no longer valid");
	} else if (!ir->job.key_active) {
		inactive(ar, "key_not_usable");
	} else if (ir->job.jti_revoked) {
		inactive(ar, "token_revoked");
	} else {
		answer_active(ir);
	}
	tk_auth_free(ar);
}

/* Queue a job; for a revocation, the account, expiry and actor of the row too.
 * Every field is set before the job is visible to a database thread. */
static int submit(introreq *ir, tk_dbjob *job, tk_dbjob_kind kind, const char *key_id, const char *jti)
{
	tk_worker *w = ir->auth.w;
	memset(job, 0, sizeof(*job));
	job->kind = kind;
	job->done = jobs_done;
	job->reply = w->mbox;
	job->arg = ir;
	snprintf(job->key_id, sizeof(job->key_id), "%s", key_id);
	snprintf(job->jti, sizeof(job->jti), "%s", jti);
	if (kind == TK_DBJOB_REVOKE) {
		snprintf(job->account, sizeof(job->account), "%s", ir->claims.acct ? ir->claims.acct : "");
		job->exp = ir->claims.exp;
		snprintf(job->actor, sizeof(job->actor), "client:%s", ir->caller_key);
	}
	if (tk_dbpool_submit(w->srv->db, job) != 0)
		return -1;
	ir->jobs_pending++;
	return 0;
}

/*
 * The caller is known (its account in caller_account): judge the token.
 * Returns 1 if database work is pending (jobs_done answers and frees).
 */
static int judge(introreq *ir)
{
	tk_authreq *ar = &ir->auth;
	char err[200];
	int rc = tk_verify(ar->w->keys->verifier, ir->token, strlen(ir->token), &ir->claims, err, sizeof(err));
	if (ir->revoke) {
		if (rc != TK_VERIFY_OK) {
			/* RFC 7009 §2.2: invalid tokens do not cause an error. */
			reply_json(ar, 200, json_object());
			return 0;
		}
		if (!ir->claims.client_id || strcmp(ir->claims.client_id, ir->caller_key) != 0) {
			tk_auth_refuse(ar, 400, "unauthorized_client", "the token was not issued to this client",
			               "foreign_token");
			return 0;
		}
	} else {
		if (rc != TK_VERIFY_OK) {
			inactive(ar, tk_verify_strerror(rc));
			return 0;
		}
		if (!ir->claims.acct || strcmp(ir->claims.acct, ir->caller_account) != 0 || !ir->claims.client_id) {
			inactive(ar, "other_account");
			return 0;
		}
	}
	int failed = 0;
	if (ir->revoke) {
		failed = submit(ir, &ir->job, TK_DBJOB_REVOKE, ir->claims.client_id, ir->claims.jti) != 0;
	} else {
		failed = submit(ir, &ir->job, TK_DBJOB_TOKEN_STATE, ir->claims.client_id, ir->claims.jti) != 0;
		if (!failed && ir->bearer)
			failed = submit(ir, &ir->job2, TK_DBJOB_TOKEN_STATE, ir->caller_key, ir->caller_jti) != 0;
	}
	if (failed && ir->jobs_pending == 0) {
		tk_auth_unavailable(ar->w, ar->req, &ar->ri);
		return 0;
	}
	ar->w->pending++;
	if (failed)
		ir->failed = 1;   /* the job already queued answers 503 when it returns */
	return 1;
}

/* Client credentials authenticated (auth.c). */
static int on_client(tk_authreq *ar, const tk_apikey *k)
{
	introreq *ir = (introreq *)ar;
	if (!ir->revoke && !tk_scopes_contains(k->scopes, INTROSPECT_SCOPE)) {
		tk_auth_refuse(ar, 403, "insufficient_scope",
		               "this client may not introspect tokens (it needs the scope " INTROSPECT_SCOPE ")",
		               "insufficient_scope");
		return 0;
	}
	snprintf(ir->caller_account, sizeof(ir->caller_account), "%s", k->account);
	snprintf(ir->caller_key, sizeof(ir->caller_key), "%s", k->id);
	return judge(ir);
}

static void handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri, int revoke)
{
	tk_form form = { 0 };
	if (tk_oauth_read_form(w, tk_req_ev(req), ri, NULL, &form) != 0)
		return;
	const char *token = tk_form_get_nonempty(&form, "token");
	if (!token) {
		tk_form_free(&form);
		return tk_http_oauth_error(w, req, ri, 400, "invalid_request", "the token parameter is required");
	}
	introreq *ir = calloc(1, sizeof(*ir));
	if (!ir || !(ir->token = strdup(token))) {
		free(ir);
		tk_form_free(&form);
		return tk_http_oauth_error(w, req, ri, 500, "server_error", "out of memory");
	}
	ir->revoke = revoke;
	ir->auth.w = w;
	ir->auth.req = tk_req_ev(req);
	ir->auth.ri = *ri;
	ir->auth.on_key = on_client;
	ir->auth.on_free = introreq_free;

	const char *authz = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (!revoke && authz && strncasecmp(authz, "Bearer ", 7) == 0) {
		/* A bearer caller: its own token must be meant for tokend (the issuer
		 * in its aud, as for the admin API: a token for a resource server is
		 * no credential here), carry tokend:introspect, and (checked with the
		 * target's state) its key must still be usable. */
		tk_claims caller = { 0 };
		char err[200];
		const char *t = authz + 7;
		while (*t == ' ')
			t++;
		int rc = tk_verify(w->keys->admin_verifier, t, strlen(t), &caller, err, sizeof(err));
		if (rc != TK_VERIFY_OK || !caller.acct || !caller.client_id || !caller.jti) {
			tk_claims_release(&caller);
			evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
			                  "Bearer error=\"invalid_token\"");
			tk_http_oauth_error(w, req, ri, 401, "invalid_token", "the bearer token is not valid");
			goto fail;
		}
		tk_scopes have = { 0 };
		const char *why = NULL;
		int ok = caller.scope && tk_scopes_parse(caller.scope, strlen(caller.scope), &have, &why) == 0 &&
		         tk_scopes_contains(&have, INTROSPECT_SCOPE);
		tk_scopes_free(&have);
		if (!ok) {
			tk_claims_release(&caller);
			evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
			                  "Bearer error=\"insufficient_scope\", scope=\"" INTROSPECT_SCOPE "\"");
			tk_http_oauth_error(w, req, ri, 403, "insufficient_scope",
			                    "the bearer token lacks the scope " INTROSPECT_SCOPE);
			goto fail;
		}
		ir->bearer = 1;
		snprintf(ir->caller_account, sizeof(ir->caller_account), "%s", caller.acct);
		snprintf(ir->caller_key, sizeof(ir->caller_key), "%s", caller.client_id);
		snprintf(ir->caller_jti, sizeof(ir->caller_jti), "%s", caller.jti);
		tk_claims_release(&caller);
		tk_form_free(&form);
		if (!judge(ir))
			tk_auth_free(&ir->auth);
		return;
	}
	tk_auth_start(&ir->auth, &form);
	tk_form_free(&form);
	return;
fail:
	tk_form_free(&form);
	tk_auth_free(&ir->auth);
}

void tk_introspect_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	handle(w, req, ri, 0);
}

void tk_revoke_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	handle(w, req, ri, 1);
}
