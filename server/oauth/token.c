/*
 * token.c - POST /oauth2/token, the client-credentials grant (RFC 6749 §4.4)
 * issuing RFC 9068 JWT access tokens.
 *
 * parse form (bounded) -> client authentication (auth.c: Basic or body,
 * checksum check, HMAC, key lookup from cache or database, constant-time
 * compare, state check) -> scope and audience checks -> mint -> 200 no-store
 * -> mark last-used (batched).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include <tokend/form.h>
#include <tokend/scope.h>

#include "auth.h"
#include "log.h"
#include "oauth.h"
#include "server.h"

/* "<account>:<subject>": an account ID (< 64 bytes), ':', a subject of at
 * most 255 characters (4 bytes each in UTF-8), NUL. */
#define SUB_MAX (64 + 1 + 4 * 255 + 1)

/* A token request: authentication first, then what was asked for. */
typedef struct tokreq {
	tk_authreq auth;                   /* first member (see auth.h) */
	int scope_given;
	tk_scopes scopes;                  /* requested */
	size_t nres;
	char *res[TK_MAX_AUDIENCES];       /* requested audiences (resource / audience) */
} tokreq;

static void tokreq_free(tk_authreq *ar)
{
	tokreq *tr = (tokreq *)ar;
	tk_scopes_free(&tr->scopes);
	for (size_t i = 0; i < tr->nres; i++)
		free(tr->res[i]);
	free(tr);
}

static int key_has_audience(const tk_apikey *k, const char *aud, const char *dflt)
{
	if (k->naud == 0)
		return strcmp(aud, dflt) == 0;
	for (size_t i = 0; i < k->naud; i++)
		if (strcmp(k->aud[i], aud) == 0)
			return 1;
	return 0;
}

/* The client is authenticated with a usable key: grant or refuse what it asked. */
static int issue(tk_authreq *ar, const tk_apikey *k)
{
	tokreq *tr = (tokreq *)ar;
	tk_worker *w = ar->w;
	tk_server *srv = w->srv;
	int64_t now = (int64_t)time(NULL);

	/* Scopes: none requested means all of the key's. */
	const tk_scopes *granted = &k->scopes;
	if (tr->scope_given) {
		if (!tk_scopes_subset(&tr->scopes, &k->scopes))
			{
			tk_auth_refuse(ar, 400, "invalid_scope",
			               "the requested scope is not granted to this client", "invalid_scope");
			return 0;
		}
		granted = &tr->scopes;
	}
	/* Audiences: requested ones must be the key's; else all of the key's, or the default. */
	const char *aud[TK_MAX_AUDIENCES];
	size_t naud = 0;
	if (tr->nres) {
		for (size_t i = 0; i < tr->nres; i++) {
			if (!key_has_audience(k, tr->res[i], srv->default_audience)) {
				tk_auth_refuse(ar, 400, "invalid_target",
				               "the requested resource or audience is not allowed for this client",
				               "invalid_target");
				return 0;
			}
			aud[naud++] = tr->res[i];
		}
	} else if (k->naud) {
		for (size_t i = 0; i < k->naud; i++)
			aud[naud++] = k->aud[i];
	} else {
		aud[naud++] = srv->default_audience;
	}

	/* The key's own issuance limit: counted only for authenticated requests
	 * that would get a token, so nobody but its holder can use it up. */
	if (k->rate_limit > 0) {
		int wait = tk_ratelimit_take(srv->rl_issue, k->id, k->rate_limit);
		if (wait) {
			char ra[16], desc[128];
			snprintf(ra, sizeof(ra), "%d", wait);
			snprintf(desc, sizeof(desc), "this client may obtain %d tokens per minute; retry later",
			         k->rate_limit);
			tk_metric_add(&w->metrics.tokens_rate_limited, 1);
			tk_log(TK_LOG_INFO, "token.rate_limited", "req", ar->ri.id, "client_id", k->id, NULL);
			evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Retry-After", ra);
			tk_http_oauth_error(w, ar->req, &ar->ri, 429, "too_many_requests", desc);
			return 0;
		}
	}

	int64_t lifetime = k->lifetime > 0 ? k->lifetime : srv->cfg->token_lifetime;
	if (lifetime > srv->cfg->token_lifetime_max)
		lifetime = srv->cfg->token_lifetime_max;
	int64_t exp = now + lifetime;
	if (k->expires_at && exp > k->expires_at)
		exp = k->expires_at;

	/* sub: the key ID, or for a key with a subject "<account>:<subject>".
	 * Account IDs never hold ':' and key IDs never do, so a sub names one
	 * account's member and never another account's key or member. */
	char sub[SUB_MAX];
	if (k->subject && (size_t)snprintf(sub, sizeof(sub), "%s:%s", k->account, k->subject) >= sizeof(sub)) {
		tk_log(TK_LOG_ERROR, "token.key_corrupt", "req", ar->ri.id, "client_id", k->id, NULL);
		tk_http_oauth_error(w, ar->req, &ar->ri, 500, "server_error", "the token could not be issued");
		return 0;
	}
	char *scope = tk_scopes_join(granted);
	tk_token_claims c = {
		.iss = srv->cfg->issuer,
		.sub = k->subject ? sub : k->id,
		.aud = aud,
		.aud_count = naud,
		.client_id = k->id,
		.scope = scope,
		.acct = k->account,
		.iat = now,
		.exp = exp,
		.env = k->environment,
		.extra = k->claims,
		.status_uri = srv->status_uri,    /* NULL when status_list = off */
		.status_idx = k->status_idx,
	};
	char err[256], jti[TK_JTI_LEN + 1];
	char *token = scope ? tk_minter_mint(w->minter, &c, jti, err, sizeof(err)) : NULL;
	if (!token) {
		tk_metric_add(&w->metrics.mint_failures, 1);
		tk_log(TK_LOG_ERROR, "token.mint_failed", "req", ar->ri.id, "detail", scope ? err : "out of memory", NULL);
		free(scope);
		tk_http_oauth_error(w, ar->req, &ar->ri, 500, "server_error", "the token could not be issued");
		return 0;
	}
	json_t *o = json_object();
	json_object_set_new(o, "access_token", json_string(token));
	json_object_set_new(o, "token_type", json_string("Bearer"));
	json_object_set_new(o, "expires_in", json_integer(exp - now));
	json_object_set_new(o, "scope", json_string(scope));
	char *body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	tk_wipe(token, strlen(token));
	free(token);
	free(scope);
	struct evkeyvalq *out = evhttp_request_get_output_headers(ar->req);
	evhttp_add_header(out, "Cache-Control", "no-store");
	evhttp_add_header(out, "Pragma", "no-cache");
	tk_metric_add(&w->metrics.tokens_issued, 1);
	tk_acctcount_add(srv->acct_tokens, k->account);   /* NULL (the default): nothing */
	tk_lastused_mark(w, k);
	if (tk_log_enabled(TK_LOG_DEBUG))
		tk_log(TK_LOG_DEBUG, "token.issued", "req", ar->ri.id, "client_id", k->id, "jti", jti, NULL);
	tk_http_reply(w, ar->req, &ar->ri, 200, "application/json", body, body ? strlen(body) : 0);
	if (body) {
		tk_wipe(body, strlen(body));
		free(body);
	}
	return 0;
}

static int valid_audience(const char *a)
{
	size_t n = strlen(a);
	if (n == 0 || n > 255)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)a[i];
		if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			return 0;
	}
	return 1;
}

void tk_token_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	tk_form form = { 0 };
	static const char *const repeatable[] = { "resource", NULL };
	if (tk_oauth_read_form(w, req, ri, repeatable, &form) != 0)
		return;

	const char *grant = tk_form_get_nonempty(&form, "grant_type");
	if (!grant) {
		tk_form_free(&form);
		return tk_http_oauth_error(w, req, ri, 400, "invalid_request", "grant_type is required");
	}
	if (strcmp(grant, "client_credentials") != 0) {
		tk_form_free(&form);
		return tk_http_oauth_error(w, req, ri, 400, "unsupported_grant_type",
		                           "only the client_credentials grant is supported");
	}
	tokreq *tr = calloc(1, sizeof(*tr));
	if (!tr) {
		tk_form_free(&form);
		return tk_http_oauth_error(w, req, ri, 500, "server_error", "out of memory");
	}
	const char *why = NULL;
	const char *scope = tk_form_get(&form, "scope");
	const char *problem = NULL, *error = NULL;
	int status = 400;
	if (scope && *scope) {
		if (tk_scopes_parse(scope, strlen(scope), &tr->scopes, &why) != 0) {
			error = "invalid_scope";
			problem = why;
		}
		tr->scope_given = 1;
	}
	size_t nresource = tk_form_count_name(&form, "resource");
	const char *audience = tk_form_get_nonempty(&form, "audience");
	if (!problem && nresource + (audience ? 1 : 0) > TK_MAX_AUDIENCES) {
		error = "invalid_target";
		problem = "too many resources";
	}
	for (size_t i = 0; !problem && i <= nresource; i++) {
		const char *a = i < nresource ? tk_form_get_nth(&form, "resource", i) : audience;
		if (!a)
			continue;
		if (!valid_audience(a)) {
			error = "invalid_target";
			problem = "malformed resource or audience";
			break;
		}
		int dup = 0;
		for (size_t k = 0; k < tr->nres; k++)
			dup |= strcmp(tr->res[k], a) == 0;
		if (dup)
			continue;
		char *copy = strdup(a);
		if (!copy) {                 /* never a token with fewer audiences than asked */
			status = 500;
			error = "server_error";
			problem = "out of memory";
			break;
		}
		tr->res[tr->nres++] = copy;
	}
	if (problem) {
		tk_http_oauth_error(w, req, ri, status, error, problem);
		tk_form_free(&form);
		tokreq_free(&tr->auth);
		return;
	}
	tr->auth.w = w;
	tr->auth.req = req;
	tr->auth.ri = *ri;
	tr->auth.on_key = issue;
	tr->auth.on_free = tokreq_free;
	tk_auth_start(&tr->auth, &form);
	tk_form_free(&form);
}
