/*
 * auth.c - OAuth client authentication (see auth.h).
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <tokend/keyfmt.h>

#include "log.h"

#define AUTH_FAILED "client authentication failed"

/* Refusals are logged as <endpoint>.refused with the true reason. */
static const char *refused_event(const tk_authreq *ar)
{
	switch (ar->ri.ep) {
	case EP_TOKEN: return "token.refused";
	case EP_INTROSPECT: return "introspect.refused";
	case EP_REVOKE: return "revoke.refused";
	default: return "auth.refused";
	}
}

void tk_auth_free(tk_authreq *ar)
{
	if (ar->timer)
		event_free(ar->timer);
	ar->timer = NULL;
	tk_wipe(ar->digest, sizeof(ar->digest));
	ar->on_free(ar);
}

static void too_many(tk_authreq *ar, int wait, const char *reason)
{
	char ra[16];
	snprintf(ra, sizeof(ra), "%d", wait);
	tk_metric_add(&ar->w->metrics.auth_throttled, 1);
	tk_log(TK_LOG_INFO, refused_event(ar), "req", ar->ri.id, "client_id", ar->ri.client_id,
	       "reason", reason, "peer", ar->peer, NULL);
	evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Retry-After", ra);
	tk_http_oauth_error(ar->w, ar->req, &ar->ri, 429, "too_many_requests",
	                    "too many failed authentications; retry later");
}

static void auth_failed(tk_authreq *ar, const char *reason)
{
	tk_worker *w = ar->w;
	if (ar->addr_wait) {
		too_many(ar, ar->addr_wait, "address_throttled");
		return;
	}
	tk_metric_add(&w->metrics.auth_failures, 1);
	tk_ratelimit_fail(w->srv->rl_addr, ar->peer);
	if (ar->ri.client_id)
		tk_ratelimit_fail(w->srv->rl_key, ar->ri.client_id);
	tk_log(TK_LOG_INFO, refused_event(ar), "req", ar->ri.id, "client_id", ar->ri.client_id,
	       "reason", reason, NULL);
	if (ar->basic)
		evhttp_add_header(evhttp_request_get_output_headers(ar->req), "WWW-Authenticate",
		                  "Basic realm=\"tokend\", charset=\"UTF-8\"");
	tk_http_oauth_error(w, ar->req, &ar->ri, 401, "invalid_client", AUTH_FAILED);
}

void tk_auth_unavailable(tk_worker *w, struct evhttp_request *req, const tk_reqinfo *ri)
{
	tk_metric_add(&w->metrics.db_errors, 1);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
	tk_http_oauth_error(w, req, ri, 503, "temporarily_unavailable",
	                    "the key store is unavailable; retry shortly");
}

void tk_auth_refuse(tk_authreq *ar, int status, const char *error, const char *description,
                    const char *reason)
{
	tk_log(TK_LOG_INFO, refused_event(ar), "req", ar->ri.id, "client_id", ar->ri.client_id,
	       "reason", reason, NULL);
	tk_http_oauth_error(ar->w, ar->req, &ar->ri, status, error, description);
}

/* The key is known (or known not to exist): decide, then hand over or refuse.
 * Returns 1 when on_key kept the request. */
static int decide(tk_authreq *ar, const tk_apikey *k)
{
	tk_server *srv = ar->w->srv;
	/* Same work whatever the outcome: two constant-time compares, the
	 * current secret and the previous one of a rotation (a key without one,
	 * and an unknown key, compare against the dummy digest instead). The
	 * previous secret counts only before its overlap ends, decided here at
	 * each request from the cached end time: no instance needs a message to
	 * stop accepting it. */
	int64_t now = (int64_t)time(NULL);
	int has_prev = k->found && k->prev_until != 0;
	int eq_cur = tk_digest_equal(ar->digest, k->found ? k->hash : srv->dummy_hash);
	int eq_prev = tk_digest_equal(ar->digest, has_prev ? k->prev_hash : srv->dummy_hash);
	int prev_live = has_prev && now < k->prev_until;
	int equal = eq_cur | (eq_prev & prev_live);
	/* A publishable key authenticates with its ID alone (no secret, from one
	 * of its origins); every other key with its secret. Each kind presented
	 * the other way is refused like a wrong secret. */
	int cred_ok = ar->no_secret ? k->found && k->publishable
	                            : k->found && !k->publishable && equal && k->pepper_id == 1;
	const char *reason = NULL;
	if (!k->found)
		reason = "unknown_key";
	else if (ar->no_secret && !k->publishable)
		reason = "secret_required";
	else if (!ar->no_secret && k->publishable)
		reason = "publishable_key_with_secret";
	else if (!ar->no_secret && !equal && has_prev && eq_prev)
		reason = "previous_secret_ended";
	else if (!cred_ok)
		reason = "wrong_secret";
	else if (!k->usable)
		reason = k->unusable_reason ? k->unusable_reason : "key_not_usable";
	else if (k->expires_at && now >= k->expires_at)
		reason = "key_expired";
	else if (k->publishable && !tk_apikey_allows_origin(k, ar->origin))
		reason = ar->origin[0] ? "origin_not_allowed" : "no_origin";
	if (reason) {
		/* An address over its limit (behind a proxy: everyone's address):
		 * every refusal is 429, after the same work as a 401 (the unknown key
		 * was compared against the dummy digest); only a usable key with its
		 * right secret gets through. Not counted against the address again
		 * (Retry-After stays true); counted against the key ID. */
		if (ar->addr_wait) {
			tk_metric_add(&ar->w->metrics.auth_failures, 1);
			tk_ratelimit_fail(srv->rl_key, ar->client_id);
			too_many(ar, ar->addr_wait, "address_throttled");
			return 0;
		}
		/* A key ID under attack: wrong secrets get 429, the right one still
		 * gets through (its holder is never locked out). */
		int wait = !cred_ok ? tk_ratelimit_check(srv->rl_key, ar->client_id) : 0;
		if (wait) {
			tk_metric_add(&ar->w->metrics.auth_failures, 1);
			tk_ratelimit_fail(srv->rl_addr, ar->peer);
			too_many(ar, wait, "key_throttled");
		} else {
			auth_failed(ar, reason);
		}
		return 0;
	}
	if (k->publishable) {
		/* CORS for exactly this origin, on the token and on any later refusal
		 * (scope, rate limit), so that the page can read the answer. */
		struct evkeyvalq *out = evhttp_request_get_output_headers(ar->req);
		evhttp_add_header(out, "Access-Control-Allow-Origin", ar->origin);
		evhttp_add_header(out, "Vary", "Origin");
	}
	return ar->on_key(ar, k);
}

static void lookup_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tk_authreq *ar = arg;
	ar->answered = 1;
	tk_log(TK_LOG_WARNING, "auth.db_timeout", "req", ar->ri.id, NULL);
	tk_auth_unavailable(ar->w, ar->req, &ar->ri);
	/* The job still refers to ar: it is freed when the job comes back. */
}

static void lookup_done(tk_dbjob *job)
{
	tk_authreq *ar = job->arg;
	tk_worker *w = ar->w;
	w->pending--;
	int kept = 0;
	if (!ar->answered) {
		event_del(ar->timer);
		if (job->status == TK_DBJOB_OK && job->key) {
			tk_keycache_put(w->srv->cache, job->key, ar->seq);
			kept = decide(ar, job->key);
		} else {
			tk_auth_unavailable(w, ar->req, &ar->ri);
		}
	}
	tk_apikey_release(job->key);
	job->key = NULL;
	if (!kept)
		tk_auth_free(ar);
}

int tk_oauth_read_form(tk_worker *w, struct evhttp_request *req, const tk_reqinfo *ri,
                       const char *const *repeatable, tk_form *form)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	memset(form, 0, sizeof(*form));
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_add_header(out, "Allow", "POST");
		tk_http_oauth_error(w, req, ri, 405, "invalid_request", "use POST");
		return -1;
	}
	if (strchr(evhttp_request_get_uri(req), '?')) {
		tk_http_oauth_error(w, req, ri, 400, "invalid_request",
		                    "parameters must be sent in the request body, not the URI");
		return -1;
	}
	const char *ctype = evhttp_find_header(in, "Content-Type");
	static const char form_type[] = "application/x-www-form-urlencoded";
	const size_t flen = sizeof(form_type) - 1;
	if (!ctype || strncasecmp(ctype, form_type, flen) != 0 ||
	    (ctype[flen] != '\0' && ctype[flen] != ';' && ctype[flen] != ' ')) {
		tk_http_oauth_error(w, req, ri, 400, "invalid_request",
		                    "the body must be application/x-www-form-urlencoded");
		return -1;
	}
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	size_t blen = evbuffer_get_length(body);
	if (blen > (size_t)TK_AT_LEAST(w->srv->cfg->max_body_size, TK_TOKEN_BODY_MIN)) {
		evhttp_add_header(out, "Connection", "close");
		tk_http_oauth_error(w, req, ri, 413, "invalid_request", "the request body is too large");
		return -1;
	}
	const char *bdata = blen ? (const char *)evbuffer_pullup(body, -1) : NULL;
	const char *why = NULL;
	if (tk_form_parse(bdata, blen, repeatable, form, &why) != 0) {
		tk_http_oauth_error(w, req, ri, 400, "invalid_request", why);
		return -1;
	}
	return 0;
}

void tk_auth_start(tk_authreq *ar, const tk_form *form)
{
	tk_worker *w = ar->w;
	struct evhttp_request *req = ar->req;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	char *basic_id = NULL, *basic_secret = NULL;
	const char *secret = NULL, *why = NULL;

	tk_http_client(w, req, ar->peer, sizeof(ar->peer));
	/* An address that failed too often: what can never authenticate (no,
	 * malformed or double credentials) is refused before any work; a
	 * well-formed credential is judged as usual, and only a right secret
	 * for a usable key passes (decide): behind a proxy the address is
	 * every client's, and the README promises a holder is never locked out. */
	ar->addr_wait = tk_ratelimit_check(w->srv->rl_addr, ar->peer);
	const char *authz = evhttp_find_header(in, "Authorization");
	const char *body_id = tk_form_get_nonempty(form, "client_id");
	const char *body_secret = tk_form_get(form, "client_secret");
	if (tk_header_count(in, "Authorization") > 1) {
		tk_http_oauth_error(w, req, &ar->ri, 400, "invalid_request", "more than one Authorization header");
		goto done;
	}
	if (tk_form_get(form, "client_assertion") || tk_form_get(form, "client_assertion_type")) {
		tk_http_oauth_error(w, req, &ar->ri, 400, "invalid_request",
		                    "client assertions are not supported; use client_secret_basic or client_secret_post");
		goto done;
	}
	if (authz) {
		ar->basic = 1;
		if (body_secret) {
			tk_http_oauth_error(w, req, &ar->ri, 400, "invalid_request",
			                    "use one client authentication method, not Basic and client_secret together");
			goto done;
		}
		if (tk_basic_parse(authz, strlen(authz), &basic_id, &basic_secret, &why) != 0) {
			auth_failed(ar, "malformed_basic");
			goto done;
		}
		if (body_id && strcmp(body_id, basic_id) != 0) {
			tk_http_oauth_error(w, req, &ar->ri, 400, "invalid_request",
			                    "client_id in the body differs from the Basic credentials");
			goto done;
		}
		body_id = basic_id;
		secret = basic_secret;
	} else if (body_id && !body_secret && ar->ri.ep == EP_TOKEN) {
		/* A publishable key's request: its ID alone, judged with its origin. */
		ar->no_secret = 1;
		const char *origin = evhttp_find_header(in, "Origin");
		if (origin && tk_header_count(in, "Origin") == 1 && strlen(origin) < sizeof(ar->origin))
			memcpy(ar->origin, origin, strlen(origin) + 1);
		/* Not from a browser: a refusal tells the client how to authenticate,
		 * as it did before publishable keys (never a Basic challenge to a page). */
		ar->basic = origin == NULL;
	} else {
		if (!body_id || !body_secret) {
			ar->basic = 1;   /* no credentials at all: tell the client how to authenticate */
			auth_failed(ar, "no_credentials");
			goto done;
		}
		secret = body_secret;
	}
	/* A mistyped or forged ID or secret is refused before any hashing or database work. */
	if (tk_key_id_check(body_id, strlen(body_id)) == TK_KEYFMT_OK) {
		memcpy(ar->client_id, body_id, strlen(body_id) + 1);   /* checked: at most TK_KEY_ID_MAX */
		ar->ri.client_id = ar->client_id;
	}
	if (!ar->ri.client_id || (!ar->no_secret && tk_secret_check(secret, strlen(secret)) != TK_KEYFMT_OK)) {
		auth_failed(ar, "malformed_credentials");
		goto done;
	}
	if (!ar->no_secret && tk_hasher_hash(w->hasher, secret, strlen(secret), ar->digest) != 0) {
		tk_http_oauth_error(w, req, &ar->ri, 500, "server_error", "internal error");
		goto done;
	}

	tk_apikey *k = tk_keycache_get(w->srv->cache, ar->client_id);
	if (k) {
		tk_metric_add(&w->metrics.cache_hits, 1);
		int kept = decide(ar, k);
		tk_apikey_release(k);
		tk_basic_free(basic_id, basic_secret);
		if (!kept)
			tk_auth_free(ar);
		return;
	}
	tk_metric_add(&w->metrics.cache_misses, 1);
	ar->seq = tk_keycache_seq(w->srv->cache);
	ar->job.kind = TK_DBJOB_KEY;
	ar->job.done = lookup_done;
	ar->job.reply = w->mbox;
	ar->job.arg = ar;
	memcpy(ar->job.key_id, ar->client_id, sizeof(ar->job.key_id));
	ar->timer = evtimer_new(w->base, lookup_timeout, ar);
	if (!ar->timer || tk_dbpool_submit(w->srv->db, &ar->job) != 0) {
		tk_log(TK_LOG_WARNING, "auth.db_unavailable", "req", ar->ri.id, NULL);
		tk_auth_unavailable(w, req, &ar->ri);
		goto done;
	}
	struct timeval tv = { w->srv->cfg->db_timeout, 0 };
	evtimer_add(ar->timer, &tv);
	w->pending++;
	tk_basic_free(basic_id, basic_secret);
	return;   /* lookup_done answers and frees */
done:
	tk_basic_free(basic_id, basic_secret);
	tk_auth_free(ar);
}
