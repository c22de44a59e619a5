/*
 * token.c - POST /oauth2/token, the client-credentials grant (RFC 6749 §4.4)
 * issuing RFC 9068 JWT access tokens.
 *
 * parse form (bounded) -> client authentication (Basic or body, exactly one)
 * -> checksum check -> HMAC of the secret -> key lookup (cache, then the
 * database through the pool, never blocking the loop) -> constant-time
 * compare -> state check -> scope and audience checks -> mint -> 200
 * no-store -> mark last-used (batched).
 *
 * An unknown key, a wrong secret, and a disabled, revoked, expired or deleted
 * key all get the same 401 after the same work (the unknown key is compared
 * against a dummy digest); the log records the true reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include <tokend/form.h>
#include <tokend/keyfmt.h>
#include <tokend/scope.h>

#include "log.h"
#include "server.h"

#define AUTH_FAILED "client authentication failed"

/* A token request waiting on the database. */
typedef struct tokreq {
	tk_worker *w;
	struct evhttp_request *req;
	tk_reqinfo ri;
	char client_id[TK_KEY_ID_LEN + 1];
	unsigned char digest[TK_HASH_LEN];
	int basic;                         /* Basic was used: 401 carries WWW-Authenticate */
	int scope_given;
	tk_scopes scopes;                  /* requested */
	size_t nres;
	char *res[TK_MAX_AUDIENCES];       /* requested audiences (resource / audience) */
	tk_dbjob job;
	uint64_t seq;
	struct event *timer;
	int answered;                      /* replied already (timeout); free when the job returns */
} tokreq;

static void tokreq_free(tokreq *tr)
{
	if (tr->timer)
		event_free(tr->timer);
	tk_scopes_free(&tr->scopes);
	for (size_t i = 0; i < tr->nres; i++)
		free(tr->res[i]);
	tk_wipe(tr->digest, sizeof(tr->digest));
	free(tr);
}

static void auth_failed(tokreq *tr, const char *reason)
{
	tk_worker *w = tr->w;
	tk_metric_add(&w->metrics.auth_failures, 1);
	tk_log(TK_LOG_INFO, "token.refused", "req", tr->ri.id, "client_id", tr->ri.client_id,
	       "reason", reason, NULL);
	if (tr->basic)
		evhttp_add_header(evhttp_request_get_output_headers(tr->req), "WWW-Authenticate",
		                  "Basic realm=\"tokend\", charset=\"UTF-8\"");
	tk_http_oauth_error(w, tr->req, &tr->ri, 401, "invalid_client", AUTH_FAILED);
}

static void unavailable(tk_worker *w, struct evhttp_request *req, const tk_reqinfo *ri)
{
	tk_metric_add(&w->metrics.db_errors, 1);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
	tk_http_oauth_error(w, req, ri, 503, "temporarily_unavailable",
	                    "the key store is unavailable; retry shortly");
}

static int key_has_audience(const tk_key *k, const char *aud, const char *dflt)
{
	if (k->naud == 0)
		return strcmp(aud, dflt) == 0;
	for (size_t i = 0; i < k->naud; i++)
		if (strcmp(k->aud[i], aud) == 0)
			return 1;
	return 0;
}

/* The key is known (or known not to exist): decide and answer. */
static void complete(tokreq *tr, const tk_key *k)
{
	tk_worker *w = tr->w;
	tk_server *srv = w->srv;
	int64_t now = (int64_t)time(NULL);

	/* Same work whatever the outcome: one constant-time compare. */
	int equal = tk_digest_equal(tr->digest, k->found ? k->hash : srv->dummy_hash);
	if (!k->found)
		return auth_failed(tr, "unknown_key");
	if (!equal || k->pepper_id != 1)
		return auth_failed(tr, "wrong_secret");
	if (!k->usable)
		return auth_failed(tr, "key_not_usable");   /* disabled, revoked, deleted or account disabled */
	if (k->expires_at && now >= k->expires_at)
		return auth_failed(tr, "key_expired");

	/* Scopes: none requested means all of the key's. */
	const tk_scopes *granted = &k->scopes;
	if (tr->scope_given) {
		if (!tk_scopes_subset(&tr->scopes, &k->scopes)) {
			tk_log(TK_LOG_INFO, "token.refused", "req", tr->ri.id, "client_id", tr->ri.client_id,
			       "reason", "invalid_scope", NULL);
			return tk_http_oauth_error(w, tr->req, &tr->ri, 400, "invalid_scope",
			                           "the requested scope is not granted to this client");
		}
		granted = &tr->scopes;
	}
	/* Audiences: requested ones must be the key's; else all of the key's, or the default. */
	const char *aud[TK_MAX_AUDIENCES];
	size_t naud = 0;
	if (tr->nres) {
		for (size_t i = 0; i < tr->nres; i++) {
			if (!key_has_audience(k, tr->res[i], srv->default_audience)) {
				tk_log(TK_LOG_INFO, "token.refused", "req", tr->ri.id, "client_id", tr->ri.client_id,
				       "reason", "invalid_target", NULL);
				return tk_http_oauth_error(w, tr->req, &tr->ri, 400, "invalid_target",
				                           "the requested resource or audience is not allowed for this client");
			}
			aud[naud++] = tr->res[i];
		}
	} else if (k->naud) {
		for (size_t i = 0; i < k->naud; i++)
			aud[naud++] = k->aud[i];
	} else {
		aud[naud++] = srv->default_audience;
	}

	int64_t lifetime = k->lifetime > 0 ? k->lifetime : srv->cfg->token_lifetime;
	if (lifetime > srv->cfg->token_lifetime_max)
		lifetime = srv->cfg->token_lifetime_max;
	int64_t exp = now + lifetime;
	if (k->expires_at && exp > k->expires_at)
		exp = k->expires_at;

	char *scope = tk_scopes_join(granted);
	tk_token_claims c = {
		.iss = srv->cfg->issuer,
		.sub = k->subject ? k->subject : k->id,
		.aud = aud,
		.aud_count = naud,
		.client_id = k->id,
		.scope = scope,
		.acct = k->account,
		.iat = now,
		.exp = exp,
	};
	char err[256], jti[TK_JTI_LEN + 1];
	char *token = scope ? tk_minter_mint(w->minter, &c, jti, err, sizeof(err)) : NULL;
	if (!token) {
		tk_metric_add(&w->metrics.mint_failures, 1);
		tk_log(TK_LOG_ERROR, "token.mint_failed", "req", tr->ri.id, "detail", scope ? err : "out of memory", NULL);
		free(scope);
		return tk_http_oauth_error(w, tr->req, &tr->ri, 500, "server_error", "the token could not be issued");
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
	struct evkeyvalq *out = evhttp_request_get_output_headers(tr->req);
	evhttp_add_header(out, "Cache-Control", "no-store");
	evhttp_add_header(out, "Pragma", "no-cache");
	tk_metric_add(&w->metrics.tokens_issued, 1);
	tk_lastused_mark(w, k->id);
	if (tk_log_enabled(TK_LOG_DEBUG))
		tk_log(TK_LOG_DEBUG, "token.issued", "req", tr->ri.id, "client_id", k->id, "jti", jti, NULL);
	tk_http_reply(w, tr->req, &tr->ri, 200, "application/json", body, body ? strlen(body) : 0);
	if (body) {
		tk_wipe(body, strlen(body));
		free(body);
	}
}

static void lookup_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tokreq *tr = arg;
	tr->answered = 1;
	tk_log(TK_LOG_WARNING, "token.db_timeout", "req", tr->ri.id, NULL);
	unavailable(tr->w, tr->req, &tr->ri);
	/* The job still owns tr: it is freed when the job comes back. */
}

static void lookup_done(tk_dbjob *job)
{
	tokreq *tr = job->arg;
	tk_worker *w = tr->w;
	w->pending--;
	if (!tr->answered) {
		event_del(tr->timer);
		if (job->status == TK_DBJOB_OK && job->key) {
			tk_keycache_put(w->srv->cache, job->key, tr->seq);
			complete(tr, job->key);
		} else {
			unavailable(w, tr->req, &tr->ri);
		}
	}
	tk_key_release(job->key);
	tokreq_free(tr);
}

static int header_count(struct evkeyvalq *h, const char *name)
{
	int n = 0;
	struct evkeyval *kv;
	TAILQ_FOREACH(kv, h, next)
		if (strcasecmp(kv->key, name) == 0)
			n++;
	return n;
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
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_add_header(out, "Allow", "POST");
		return tk_http_oauth_error(w, req, ri, 405, "invalid_request", "use POST");
	}
	/* Request smuggling shapes: no chunked bodies, one Content-Length. */
	if (evhttp_find_header(in, "Transfer-Encoding") || header_count(in, "Content-Length") > 1) {
		evhttp_add_header(out, "Connection", "close");
		return tk_http_oauth_error(w, req, ri, 400, "invalid_request",
		                           "send the body with a single Content-Length, not Transfer-Encoding");
	}
	if (strchr(evhttp_request_get_uri(req), '?'))
		return tk_http_oauth_error(w, req, ri, 400, "invalid_request",
		                           "parameters must be sent in the request body, not the URI");
	const char *ctype = evhttp_find_header(in, "Content-Type");
	static const char form_type[] = "application/x-www-form-urlencoded";
	if (!ctype || strncasecmp(ctype, form_type, sizeof(form_type) - 1) != 0 ||
	    (ctype[sizeof(form_type) - 1] != '\0' && ctype[sizeof(form_type) - 1] != ';' &&
	     ctype[sizeof(form_type) - 1] != ' '))
		return tk_http_oauth_error(w, req, ri, 400, "invalid_request",
		                           "the body must be application/x-www-form-urlencoded");

	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	size_t blen = evbuffer_get_length(body);
	const char *bdata = blen ? (const char *)evbuffer_pullup(body, -1) : NULL;
	static const char *const repeatable[] = { "resource", NULL };
	tk_form form = { 0 };
	const char *why = NULL;
	if (tk_form_parse(bdata, blen, repeatable, &form, &why) != 0)
		return tk_http_oauth_error(w, req, ri, 400, "invalid_request", why);

	tokreq *tr = calloc(1, sizeof(*tr));
	if (!tr) {
		tk_form_free(&form);
		return tk_http_oauth_error(w, req, ri, 500, "server_error", "out of memory");
	}
	tr->w = w;
	tr->req = req;
	tr->ri = *ri;
	char *basic_id = NULL, *basic_secret = NULL;
	const char *secret = NULL;

	const char *grant = tk_form_get_nonempty(&form, "grant_type");
	if (!grant) {
		tk_http_oauth_error(w, req, ri, 400, "invalid_request", "grant_type is required");
		goto out;
	}
	if (strcmp(grant, "client_credentials") != 0) {
		tk_http_oauth_error(w, req, ri, 400, "unsupported_grant_type",
		                    "only the client_credentials grant is supported");
		goto out;
	}

	/* Client authentication: exactly one method. */
	const char *authz = evhttp_find_header(in, "Authorization");
	const char *body_id = tk_form_get_nonempty(&form, "client_id");
	const char *body_secret = tk_form_get(&form, "client_secret");
	if (header_count(in, "Authorization") > 1) {
		tk_http_oauth_error(w, req, ri, 400, "invalid_request", "more than one Authorization header");
		goto out;
	}
	if (tk_form_get(&form, "client_assertion") || tk_form_get(&form, "client_assertion_type")) {
		tk_http_oauth_error(w, req, ri, 400, "invalid_request",
		                    "client assertions are not supported; use client_secret_basic or client_secret_post");
		goto out;
	}
	if (authz) {
		tr->basic = 1;
		if (body_secret) {
			tk_http_oauth_error(w, req, ri, 400, "invalid_request",
			                    "use one client authentication method, not Basic and client_secret together");
			goto out;
		}
		if (tk_basic_parse(authz, strlen(authz), &basic_id, &basic_secret, &why) != 0) {
			auth_failed(tr, "malformed_basic");
			goto out;
		}
		if (body_id && strcmp(body_id, basic_id) != 0) {
			tk_http_oauth_error(w, req, ri, 400, "invalid_request",
			                    "client_id in the body differs from the Basic credentials");
			goto out;
		}
		snprintf(tr->client_id, sizeof(tr->client_id), "%.*s", TK_KEY_ID_LEN, basic_id);
		secret = basic_secret;
		if (tk_key_id_check(basic_id, strlen(basic_id)) == TK_KEYFMT_OK)
			tr->ri.client_id = tr->client_id;
	} else {
		if (!body_id || !body_secret) {
			tr->basic = 1;   /* no credentials at all: tell the client how to authenticate */
			auth_failed(tr, "no_credentials");
			goto out;
		}
		snprintf(tr->client_id, sizeof(tr->client_id), "%.*s", TK_KEY_ID_LEN, body_id);
		secret = body_secret;
		if (tk_key_id_check(body_id, strlen(body_id)) == TK_KEYFMT_OK)
			tr->ri.client_id = tr->client_id;
	}
	/* A mistyped or forged ID or secret is refused before any hashing or database work. */
	if (!tr->ri.client_id || tk_secret_check(secret, strlen(secret)) != TK_KEYFMT_OK) {
		auth_failed(tr, "malformed_credentials");
		goto out;
	}

	const char *scope = tk_form_get(&form, "scope");
	if (scope && *scope) {
		if (tk_scopes_parse(scope, strlen(scope), &tr->scopes, &why) != 0) {
			tk_http_oauth_error(w, req, ri, 400, "invalid_scope", why);
			goto out;
		}
		tr->scope_given = 1;
	}
	size_t nresource = tk_form_count_name(&form, "resource");
	const char *audience = tk_form_get_nonempty(&form, "audience");
	if (nresource + (audience ? 1 : 0) > TK_MAX_AUDIENCES) {
		tk_http_oauth_error(w, req, ri, 400, "invalid_target", "too many resources");
		goto out;
	}
	for (size_t i = 0; i <= nresource; i++) {
		const char *a = i < nresource ? tk_form_get_nth(&form, "resource", i) : audience;
		if (!a)
			continue;
		if (!valid_audience(a)) {
			tk_http_oauth_error(w, req, ri, 400, "invalid_target", "malformed resource or audience");
			goto out;
		}
		int dup = 0;
		for (size_t k = 0; k < tr->nres; k++)
			dup |= strcmp(tr->res[k], a) == 0;
		if (!dup)
			tr->res[tr->nres++] = strdup(a);
	}

	if (tk_hasher_hash(w->hasher, secret, strlen(secret), tr->digest) != 0) {
		tk_http_oauth_error(w, req, ri, 500, "server_error", "internal error");
		goto out;
	}

	tk_key *k = tk_keycache_get(w->srv->cache, tr->client_id);
	if (k) {
		tk_metric_add(&w->metrics.cache_hits, 1);
		complete(tr, k);
		tk_key_release(k);
		goto out;
	}
	tk_metric_add(&w->metrics.cache_misses, 1);
	tr->seq = tk_keycache_seq(w->srv->cache);
	tr->job.kind = TK_DBJOB_KEY;
	tr->job.done = lookup_done;
	tr->job.reply = w->mbox;
	tr->job.arg = tr;
	memcpy(tr->job.key_id, tr->client_id, sizeof(tr->job.key_id));
	tr->timer = evtimer_new(w->base, lookup_timeout, tr);
	if (!tr->timer || tk_dbpool_submit(w->srv->db, &tr->job) != 0) {
		tk_log(TK_LOG_WARNING, "token.db_unavailable", "req", ri->id, NULL);
		unavailable(w, req, ri);
		goto out;
	}
	struct timeval tv = { w->srv->cfg->db_timeout, 0 };
	evtimer_add(tr->timer, &tv);
	w->pending++;
	tr = NULL;   /* owned by the job now */
out:
	tk_basic_free(basic_id, basic_secret);
	tk_form_free(&form);
	if (tr)
		tokreq_free(tr);
}
