/*
 * token.c - POST /oauth2/token, the client-credentials grant (RFC 6749 §4.4)
 * issuing RFC 9068 JWT access tokens.
 *
 * parse form (bounded) -> client authentication (auth.c: Basic or body,
 * checksum check, HMAC, key lookup from cache or database, constant-time
 * compare, state check) -> scope and audience checks -> mint -> 200 no-store
 * -> mark last-used (batched).
 *
 * Publishable keys (sql/010): the request of a browser page, client_id alone
 * from one of the key's allowed origins (auth.c), answered with CORS for
 * exactly that origin; their tokens are short (publishable_token_lifetime),
 * carry the claim "origin" and are limited per key and per client address.
 * OPTIONS is the CORS preflight (token_preflight below).
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
#include <libpq-fe.h>

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

/* A token request is over a kilobyte (the Origin, the database job): glibc
 * serves that size from its large bins, consolidating the fast bins first,
 * at every request. So the worker keeps the last one freed for the next
 * (tk_worker.spare_req; freed with the worker). Requests are made and freed
 * on their worker's thread. */
static tokreq *tokreq_new(tk_worker *w)
{
	tokreq *tr = w->spare_req;
	if (!tr)
		return calloc(1, sizeof(*tr));
	w->spare_req = NULL;
	memset(tr, 0, sizeof(*tr));
	return tr;
}

static void tokreq_free(tk_authreq *ar)
{
	tokreq *tr = (tokreq *)ar;
	tk_worker *w = ar->w;              /* NULL: refused before it was set */
	tk_scopes_free(&tr->scopes);
	for (size_t i = 0; i < tr->nres; i++)
		free(tr->res[i]);
	if (w && !w->spare_req) {
		w->spare_req = tr;
		return;
	}
	free(tr);
}

/* {"access_token":..,"token_type":"Bearer","expires_in":..,"scope":..} into
 * out. Returns its length, or 0 when it does not fit (nothing to send). */
static size_t token_body(char *out, size_t cap, const char *token, size_t toklen,
                         int64_t expires_in, const char *scope)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	int n;

	n = snprintf(out, cap, "{\"access_token\":\"");
	if (n < 0 || (size_t)n >= cap || toklen > cap - (size_t)n)
		return 0;
	o = (size_t)n;
	memcpy(out + o, token, toklen);          /* base64url and dots: nothing to escape */
	o += toklen;
	n = snprintf(out + o, cap - o, "\",\"token_type\":\"Bearer\",\"expires_in\":%lld,\"scope\":\"",
	             (long long)expires_in);
	if (n < 0 || (size_t)n >= cap - o)
		return 0;
	o += (size_t)n;
	for (const unsigned char *p = (const unsigned char *)scope; *p; p++) {
		if (cap - o < 7)
			return 0;
		if (*p == '"' || *p == '\\') {
			out[o++] = '\\';
			out[o++] = (char)*p;
		} else if (*p < 0x20) {
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[*p >> 4];
			out[o + 5] = hex[*p & 15];
			o += 6;
		} else {
			out[o++] = (char)*p;
		}
	}
	if (cap - o < 3)
		return 0;
	out[o++] = '"';
	out[o++] = '}';
	out[o] = '\0';
	return o;
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
	const tk_scopes *granted = k->scopes;
	if (tr->scope_given) {
		if (!tk_scopes_subset(&tr->scopes, k->scopes))
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

	/* A publishable key's tokens: limited per key and per client address
	 * (its ID is public: anyone can ask with it from a browser). */
	if (k->publishable) {
		char name[8 + TK_KEY_ID_MAX + sizeof(ar->peer)];
		int wait = 0;
		snprintf(name, sizeof(name), "a:%s", ar->peer);
		if (srv->cfg->publishable_tokens_per_address > 0)
			wait = tk_ratelimit_take(srv->rl_public, name, srv->cfg->publishable_tokens_per_address);
		snprintf(name, sizeof(name), "k:%s", k->id);
		if (!wait && srv->cfg->publishable_tokens_per_key > 0)
			wait = tk_ratelimit_take(srv->rl_public, name, srv->cfg->publishable_tokens_per_key);
		if (wait) {
			char ra[16];
			snprintf(ra, sizeof(ra), "%d", wait);
			tk_metric_add(&w->metrics.tokens_rate_limited, 1);
			tk_log(TK_LOG_INFO, "token.rate_limited", "req", ar->ri.id, "client_id", k->id, "peer", ar->peer, NULL);
			tk_req_add_header(ar->req, "Retry-After", ra);
			tk_req_oauth_error(w, ar->req, &ar->ri, 429, "too_many_requests",
			                   "too many tokens for this publishable key or address; retry later");
			return 0;
		}
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
			tk_req_add_header(ar->req, "Retry-After", ra);
			tk_req_oauth_error(w, ar->req, &ar->ri, 429, "too_many_requests", desc);
			return 0;
		}
	}

	int64_t lifetime = k->lifetime > 0 ? k->lifetime : srv->cfg->token_lifetime;
	if (k->publishable && lifetime > srv->cfg->publishable_token_lifetime)
		lifetime = srv->cfg->publishable_token_lifetime;
	if (lifetime > srv->cfg->token_lifetime_max)
		lifetime = srv->cfg->token_lifetime_max;
	int64_t exp = now + lifetime;
	if (k->expires_at && exp > k->expires_at)
		exp = k->expires_at;

	/* sub: the key ID, or for a key with a subject "<account>:<subject>".
	 * Account IDs never hold ':' and key IDs never do, so a sub names one
	 * account's member and never another account's key or member. */
	char sub[SUB_MAX];
	const char *subject = tk_apikey_subject(k);
	if (subject && (size_t)snprintf(sub, sizeof(sub), "%s:%s", k->account, subject) >= sizeof(sub)) {
		tk_log(TK_LOG_ERROR, "token.key_corrupt", "req", ar->ri.id, "client_id", k->id, NULL);
		tk_req_oauth_error(w, ar->req, &ar->ri, 500, "server_error", "the token could not be issued");
		return 0;
	}
	/* Keys in the database: a set may publish keys none of which may sign yet
	 * (dbkeys.c): no token then, and never one from an unpublished key. */
	if (!tk_signer_active_kid(w->keys->signer)) {
		tk_log(TK_LOG_ERROR, "token.no_signing_key", "req", ar->ri.id, "client_id", k->id, NULL);
		tk_req_add_header(ar->req, "Retry-After", "1");
		tk_req_oauth_error(w, ar->req, &ar->ri, 503, "temporarily_unavailable",
		                   "no signing key is available; retry shortly");
		return 0;
	}
	char *scope = tk_scopes_join(granted);
	tk_token_claims c = {
		.iss = srv->cfg->issuer,
		.sub = subject ? sub : k->id,
		.aud = aud,
		.aud_count = naud,
		.client_id = k->id,
		.scope = scope,
		.acct = k->account,
		.iat = now,
		.exp = exp,
		.env = tk_apikey_environment(k),
		.origin = k->publishable ? ar->origin : NULL,   /* checked: one of the key's (auth.c) */
		.extra = tk_apikey_claims(k),
		.status_uri = srv->status_uri,    /* NULL when status_list = off */
		.status_idx = k->status_idx,
	};
	char err[256], jti[TK_JTI_LEN + 1];
	size_t toklen = 0;
	const char *token = scope ? tk_minter_mint_ref(w->minter, &c, jti, &toklen, err, sizeof(err)) : NULL;
	/* The body written once into one buffer: the token is base64url and dots,
	 * the scope JSON-escaped (granted scopes are scope-tokens: nothing to escape
	 * in practice, but the writer does not rely on it). */
	char body[TK_TOKEN_MAX + TK_SCOPES_MAX * (TK_SCOPE_TOKEN_MAX + 1) + 128];
	size_t blen = 0;
	if (token && (blen = token_body(body, sizeof(body), token, toklen, exp - now, scope)) == 0) {
		token = NULL;
		snprintf(err, sizeof(err), "the token response would not fit its buffer");
	}
	tk_minter_forget(w->minter);   /* the token lives on in `body` only, wiped after the reply */
	if (!token) {
		tk_metric_add(&w->metrics.mint_failures, 1);
		tk_log(TK_LOG_ERROR, "token.mint_failed", "req", ar->ri.id, "detail", scope ? err : "out of memory", NULL);
		free(scope);
		tk_req_oauth_error(w, ar->req, &ar->ri, 500, "server_error", "the token could not be issued");
		return 0;
	}
	free(scope);
	tk_req_add_header(ar->req, "Cache-Control", "no-store");
	tk_req_add_header(ar->req, "Pragma", "no-cache");
	tk_metric_add(&w->metrics.tokens_issued, 1);
	tk_acctcount_add(srv->acct_tokens, k->account);   /* NULL (the default): nothing */
	tk_lastused_mark(w, k);
	if (tk_log_enabled(TK_LOG_DEBUG))
		tk_log(TK_LOG_DEBUG, "token.issued", "req", ar->ri.id, "client_id", k->id, "jti", jti, NULL);
	tk_req_reply(w, ar->req, &ar->ri, 200, "application/json", body, blen);
	tk_wipe(body, blen);
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

/*
 * OPTIONS /oauth2/token: the CORS preflight of a publishable key's request.
 * A preflight carries no credentials, so the key is unknown here: it is
 * granted for an origin that at least one usable publishable key allows (a
 * database lookup, limited per client address like the tokens), for POST
 * with at most the Content-Type header; the token request itself then
 * checks that the origin is one of *that* key's. Every other preflight gets
 * 403 without any Access-Control-Allow-* header, so the browser stops.
 */
#define PREFLIGHT_MAX_AGE "600"

typedef struct preflight {
	tk_worker *w;
	struct evhttp_request *req;
	tk_reqinfo ri;
	tk_dbjob job;
	char origin[256];
} preflight;

static const char preflight_sql[] =
	"SELECT EXISTS (SELECT 1 FROM api_keys k JOIN accounts a ON a.id = k.account_id"
	" WHERE k.publishable AND k.allowed_origins @> ARRAY[$1::text] AND tokend_key_is_active(k)"
	" AND k.disabled_at IS NULL AND a.disabled_at IS NULL)";

static void preflight_refuse(tk_worker *w, struct evhttp_request *req, const tk_reqinfo *ri, int status,
                             const char *why)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Vary", "Origin");
	tk_log(TK_LOG_INFO, "token.preflight_refused", "req", ri->id, "reason", why, NULL);
	tk_http_oauth_error(w, req, ri, status, "invalid_request", why);
}

static void preflight_done(tk_dbjob *job)
{
	preflight *pf = job->arg;
	tk_worker *w = pf->w;
	PGresult *r = job->result;
	w->pending--;
	if (job->status != TK_DBJOB_OK || !r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		tk_auth_unavailable(w, tk_req_ev(pf->req), &pf->ri);
	} else if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
		preflight_refuse(w, pf->req, &pf->ri, 403, "this origin is not allowed by any publishable key");
	} else {
		struct evkeyvalq *out = evhttp_request_get_output_headers(pf->req);
		evhttp_add_header(out, "Access-Control-Allow-Origin", pf->origin);
		evhttp_add_header(out, "Access-Control-Allow-Methods", "POST");
		evhttp_add_header(out, "Access-Control-Allow-Headers", "Content-Type");
		evhttp_add_header(out, "Access-Control-Max-Age", PREFLIGHT_MAX_AGE);
		evhttp_add_header(out, "Vary", "Origin");
		tk_http_reply(w, pf->req, &pf->ri, 204, NULL, NULL, 0);
	}
	if (r)
		PQclear(r);
	job->result = NULL;
	free(pf);
}

/* 1 when every name of an Access-Control-Request-Headers list is content-type. */
static int only_content_type(const char *list)
{
	while (*list) {
		while (*list == ' ' || *list == '\t' || *list == ',')
			list++;
		if (!*list)
			break;
		size_t n = strcspn(list, " \t,");
		if (n != 12 || strncasecmp(list, "content-type", 12) != 0)
			return 0;
		list += n;
	}
	return 1;
}

static void token_preflight(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *origin = evhttp_find_header(in, "Origin");
	const char *method = evhttp_find_header(in, "Access-Control-Request-Method");
	const char *headers = evhttp_find_header(in, "Access-Control-Request-Headers");
	if (!origin || tk_header_count(in, "Origin") != 1 || strlen(origin) >= sizeof(((preflight *)0)->origin) ||
	    (strncmp(origin, "https://", 8) != 0 && strncmp(origin, "http://", 7) != 0))
		return preflight_refuse(w, req, ri, 403, "a preflight needs one http(s) Origin");
	for (const char *c = origin; *c; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
			return preflight_refuse(w, req, ri, 403, "a preflight needs one http(s) Origin");
	if (!method || tk_header_count(in, "Access-Control-Request-Method") != 1 || strcmp(method, "POST") != 0)
		return preflight_refuse(w, req, ri, 403, "the token endpoint allows POST only");
	if (headers && (tk_header_count(in, "Access-Control-Request-Headers") != 1 || !only_content_type(headers)))
		return preflight_refuse(w, req, ri, 403, "the token endpoint allows the Content-Type header only");
	/* Each preflight may cost a database lookup: limited per address. */
	tk_server *srv = w->srv;
	char peer[64], name[80];
	tk_http_client(w, req, peer, sizeof(peer));
	snprintf(name, sizeof(name), "a:%s", peer);
	int wait = srv->cfg->publishable_tokens_per_address > 0
	           ? tk_ratelimit_take(srv->rl_public, name, srv->cfg->publishable_tokens_per_address) : 0;
	if (wait) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%d", wait);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
		return preflight_refuse(w, req, ri, 429, "too many requests from this address; retry later");
	}
	preflight *pf = calloc(1, sizeof(*pf));
	if (!pf)
		return tk_http_oauth_error(w, req, ri, 500, "server_error", "out of memory");
	pf->w = w;
	pf->req = req;
	pf->ri = *ri;
	memcpy(pf->origin, origin, strlen(origin) + 1);
	pf->job.kind = TK_DBJOB_QUERY;
	pf->job.sql = preflight_sql;
	pf->job.nparams = 1;
	pf->job.params[0] = pf->origin;
	pf->job.done = preflight_done;
	pf->job.reply = w->mbox;
	pf->job.arg = pf;
	if (tk_dbpool_submit(srv->db, &pf->job) != 0) {
		free(pf);
		return tk_auth_unavailable(w, tk_req_ev(req), ri);
	}
	w->pending++;
}

void tk_token_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	if (evhttp_request_get_command(req) == EVHTTP_REQ_OPTIONS)
		return token_preflight(w, req, ri);
	tk_token_handle_req(w, tk_req_ev(req), ri);
}

void tk_token_handle_req(tk_worker *w, tk_req req, tk_reqinfo *ri)
{
	tk_form form = { 0 };
	static const char *const repeatable[] = { "resource", NULL };
	if (tk_oauth_read_form(w, req, ri, repeatable, &form) != 0)
		return;

	const char *grant = tk_form_get_nonempty(&form, "grant_type");
	if (!grant) {
		tk_form_free(&form);
		return tk_req_oauth_error(w, req, ri, 400, "invalid_request", "grant_type is required");
	}
	if (strcmp(grant, "client_credentials") != 0) {
		tk_form_free(&form);
		return tk_req_oauth_error(w, req, ri, 400, "unsupported_grant_type",
		                          "only the client_credentials grant is supported");
	}
	tokreq *tr = tokreq_new(w);
	if (!tr) {
		tk_form_free(&form);
		return tk_req_oauth_error(w, req, ri, 500, "server_error", "out of memory");
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
		tk_req_oauth_error(w, req, ri, status, error, problem);
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
