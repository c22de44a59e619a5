/*
 * keyauth.c - authentication by an API key's ID and secret (see keyauth.h),
 * shared by the OAuth endpoints and the admin API.
 */
#include "keyauth.h"

#include <string.h>
#include <time.h>

#include "log.h"

const char *tk_keyauth_event(const tk_authreq *ar)
{
	switch (ar->ri.ep) {
	case EP_TOKEN: return "token.refused";
	case EP_INTROSPECT: return "introspect.refused";
	case EP_REVOKE: return "revoke.refused";
	case EP_ADMIN: return "admin.refused";
	default: return "auth.refused";
	}
}

void tk_keyauth_free(tk_authreq *ar)
{
	if (ar->timer)
		event_free(ar->timer);
	ar->timer = NULL;
	tk_wipe(ar->digest, sizeof(ar->digest));
	ar->on_free(ar);
}

void tk_keyauth_begin(tk_authreq *ar)
{
	tk_req_client(ar->w, ar->req, ar->peer, sizeof(ar->peer));
	ar->addr_wait = tk_ratelimit_check(ar->w->srv->rl_addr, ar->peer);
}

static void too_many(tk_authreq *ar, int wait, const char *reason)
{
	tk_metric_add(&ar->w->metrics.auth_throttled, 1);
	tk_log(TK_LOG_INFO, tk_keyauth_event(ar), "req", ar->ri.id, "client_id", ar->ri.client_id,
	       "reason", reason, "peer", ar->peer, NULL);
	ar->refuse(ar, 429, wait);
}

void tk_keyauth_failed(tk_authreq *ar, const char *reason)
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
	tk_log(TK_LOG_INFO, tk_keyauth_event(ar), "req", ar->ri.id, "client_id", ar->ri.client_id,
	       "reason", reason, NULL);
	ar->refuse(ar, 401, 0);
}

static void unavailable(tk_authreq *ar)
{
	tk_metric_add(&ar->w->metrics.db_errors, 1);
	ar->refuse(ar, 503, 1);
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
	int64_t prev_until = tk_apikey_prev_until(k);
	int has_prev = k->found && prev_until != 0;
	int eq_cur = tk_digest_equal(ar->digest, k->found ? k->hash : srv->dummy_hash);
	int eq_prev = tk_digest_equal(ar->digest, has_prev ? tk_apikey_prev_hash(k) : srv->dummy_hash);
	int prev_live = has_prev && now < prev_until;
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
		reason = tk_apikey_unusable_reason(k) ? tk_apikey_unusable_reason(k) : "key_not_usable";
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
			tk_keyauth_failed(ar, reason);
		}
		return 0;
	}
	if (k->publishable) {
		/* CORS for exactly this origin, on the token and on any later refusal
		 * (scope, rate limit), so that the page can read the answer. */
		tk_req_add_header(ar->req, "Access-Control-Allow-Origin", ar->origin);
		tk_req_add_header(ar->req, "Vary", "Origin");
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
	unavailable(ar);
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
			unavailable(ar);
		}
	}
	tk_apikey_release(job->key);
	job->key = NULL;
	if (!kept)
		tk_keyauth_free(ar);
}

void tk_keyauth_run(tk_authreq *ar, const char *id, const char *secret)
{
	tk_worker *w = ar->w;
	/* A mistyped or forged ID or secret is refused before any hashing or database work. */
	if (id && tk_key_id_check(id, strlen(id)) == TK_KEYFMT_OK) {
		memcpy(ar->client_id, id, strlen(id) + 1);   /* checked: at most TK_KEY_ID_MAX */
		ar->ri.client_id = ar->client_id;
	}
	if (!ar->ri.client_id ||
	    (!ar->no_secret && (!secret || tk_secret_check(secret, strlen(secret)) != TK_KEYFMT_OK))) {
		tk_keyauth_failed(ar, "malformed_credentials");
		goto done;
	}
	if (!ar->no_secret && tk_hasher_hash(w->hasher, secret, strlen(secret), ar->digest) != 0) {
		ar->refuse(ar, 500, 0);
		goto done;
	}

	tk_apikey *k = tk_keycache_get(w->srv->cache, ar->client_id);
	if (k) {
		tk_metric_add(&w->metrics.cache_hits, 1);
		int kept = decide(ar, k);
		tk_apikey_release(k);
		if (!kept)
			tk_keyauth_free(ar);
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
		unavailable(ar);
		goto done;
	}
	struct timeval tv = { w->srv->cfg->db_timeout, 0 };
	evtimer_add(ar->timer, &tv);
	w->pending++;
	return;   /* lookup_done answers and frees */
done:
	tk_keyauth_free(ar);
}
