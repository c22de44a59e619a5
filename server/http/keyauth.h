/*
 * keyauth.h - authentication of a request by an API key's ID and secret: the
 * one authenticator shared by the OAuth endpoints (oauth/auth.c: Basic or
 * form credentials) and the admin API (admin/api.c: a key sent directly as
 * `Authorization: Bearer <key-id>:<secret>` or `X-API-Key`).
 *
 * A malformed key ID or secret (bad checksum) is refused before any hashing
 * or database work. The secret's HMAC is computed at once and the secret is
 * never kept. The key comes from the cache or, without blocking the loop,
 * from the database pool (a KEY job; its answer runs on the same worker).
 * Two constant-time compares (the current digest and a rotated key's
 * previous one; an unknown key against a dummy digest) make every outcome
 * cost the same work. An unknown key, a wrong secret, and a disabled,
 * revoked, deleted or expired key (or a disabled account) are all the same
 * refusal; the log records the true reason and the key ID, never the secret.
 *
 * Failures count against the client address (rl_addr) and the key ID
 * (rl_key), the same limiters whichever endpoint they arrive at: a wrong
 * secret at the admin API and one at the token endpoint fill the same
 * buckets. Over the address's limit every refusal is 429, and only a right
 * secret for a usable key passes (behind a proxy the address is everyone's);
 * over the key ID's limit wrong secrets get 429 and the right one passes.
 *
 * The caller answers: this module decides and calls `refuse` with a status,
 * and the endpoint shapes the answer (an OAuth error, an admin API error).
 * Threading: the worker's thread only.
 */
#ifndef TOKEND_KEYAUTH_H
#define TOKEND_KEYAUTH_H

#include <event2/event.h>
#include <event2/http.h>

#include <tokend/crypto.h>
#include <tokend/keyfmt.h>

#include "server.h"

typedef struct tk_authreq tk_authreq;

/*
 * The request being authenticated. Endpoints embed it in their own request
 * struct (the OAuth endpoints as its FIRST member) allocated with calloc.
 *   on_key:  called once with the authenticated, usable key (valid only
 *            during the call). Returns 0 when it has answered the request
 *            (the core then calls on_free), or 1 when it keeps the request for
 *            more asynchronous work: it then answers and frees it itself
 *            (tk_auth_free).
 *   refuse:  answers a refusal (nothing else; metrics and the log line are
 *            done): status 401 (authentication failed), 429 (too many
 *            failures; `wait` seconds for Retry-After), 503 (the key store
 *            did not answer) or 500 (internal).
 *   on_free: frees the endpoint's struct (and what it owns); called exactly
 *            once, after the request was answered.
 */
struct tk_authreq {
	tk_worker *w;
	tk_req req;                        /* the request (req.h: evhttp's or the fast lane's) */
	tk_reqinfo ri;
	char client_id[TK_KEY_ID_MAX + 1];
	unsigned char digest[TK_HASH_LEN];
	int basic;                         /* OAuth: Basic was used, 401 carries WWW-Authenticate */
	char peer[64];                     /* client address (tk_http_client: the TCP peer, or
	                                      X-Forwarded-For behind trusted_proxies) */
	int addr_wait;                     /* its address is over the failure limit: seconds */
	/* A publishable key's request (token endpoint only, oauth/auth.c): the key
	 * ID alone and no secret. The key must be publishable and `origin` (the one
	 * Origin header, as sent; "" when none, repeated or too long) one of its
	 * allowed origins; the answer then carries Access-Control-Allow-Origin:
	 * origin and Vary: Origin. Any other key presented this way, or a
	 * publishable key presented with a secret (e.g. to the admin API), is
	 * refused like a wrong secret. */
	int no_secret;
	char origin[256];
	tk_dbjob job;
	uint64_t seq;
	struct event *timer;
	int answered;
	int (*on_key)(tk_authreq *ar, const tk_apikey *k);
	void (*refuse)(tk_authreq *ar, int status, int wait);
	void (*on_free)(tk_authreq *ar);
};

/* Set ar->peer (the client address) and ar->addr_wait (its failure limit).
 * ar->w and ar->req must be set. Call before anything else below. */
void tk_keyauth_begin(tk_authreq *ar);

/*
 * Authenticate key `id` with `secret` (NUL-terminated, any length: checked
 * here; NULL only with ar->no_secret set). ar->w, ar->req, ar->ri, on_key, refuse and on_free must be set and
 * tk_keyauth_begin called. Either refuses (through `refuse`) or calls
 * on_key, now or later; in every case on_free is called once the request is
 * answered. The caller must not touch `ar` after this returns.
 */
void tk_keyauth_run(tk_authreq *ar, const char *id, const char *secret);

/* Refuse credentials that could never authenticate (none, malformed):
 * counted as a failure against the address (and the key ID when ar->ri has
 * one), logged with `reason`, answered 401 - or 429 when the address is over
 * its limit. Does not free `ar`. */
void tk_keyauth_failed(tk_authreq *ar, const char *reason);

/* The log event of the request's refusals: <endpoint>.refused
 * (token, introspect, revoke, admin; else auth.refused). */
const char *tk_keyauth_event(const tk_authreq *ar);

/* Free `ar` (the endpoint's struct through on_free). */
void tk_keyauth_free(tk_authreq *ar);

#endif
