/*
 * auth.h - OAuth client authentication shared by the token, introspection
 * and revocation endpoints.
 *
 * Exactly one method: HTTP Basic (client_secret_basic, RFC 6749 §2.3.1
 * form-encoding inside) or client_id + client_secret in the body
 * (client_secret_post); at the token endpoint also a publishable key's
 * client_id alone (no secret), accepted only from one of its allowed browser
 * origins (sql/010). A publishable key with a secret, or another key without
 * one, is invalid_client. A malformed key ID or secret (bad checksum) is
 * refused before any hashing or database work. The secret's HMAC is computed
 * at once and the secret is never kept. The key comes from the cache or,
 * without blocking the loop, from the database pool.
 *
 * An unknown key, a wrong secret, and a disabled, revoked, deleted or expired
 * key (or a disabled account) all get the same 401 invalid_client after the
 * same work (an unknown key is compared against a dummy digest); the log
 * records the true reason.
 */
#ifndef TOKEND_AUTH_H
#define TOKEND_AUTH_H

#include <tokend/form.h>

#include "server.h"

typedef struct tk_authreq tk_authreq;

/*
 * The request being authenticated. Endpoints embed it as the FIRST member of
 * their own request struct and allocate that struct with calloc.
 *   on_key:  called once with the authenticated, usable key (valid only
 *            during the call). Returns 0 when it has answered the request
 *            (auth then calls on_free), or 1 when it keeps the request for
 *            more asynchronous work: it then answers and calls on_free itself.
 *   on_free: frees the endpoint's struct (and what it owns); called exactly
 *            once, after the request was answered.
 */
struct tk_authreq {
	tk_worker *w;
	struct evhttp_request *req;
	tk_reqinfo ri;
	char client_id[TK_KEY_ID_MAX + 1];
	unsigned char digest[TK_HASH_LEN];
	int basic;                         /* Basic was used: 401 carries WWW-Authenticate */
	char peer[64];                     /* client address (tk_http_client: the TCP peer, or
	                                      X-Forwarded-For behind trusted_proxies) */
	int addr_wait;                     /* its address is over the failure limit: seconds */
	/* A publishable key's request (token endpoint only): client_id in the
	 * body and no secret at all. The key must be publishable and `origin`
	 * (the one Origin header, as sent; "" when none, repeated or too long)
	 * one of its allowed origins. On success the answer carries
	 * Access-Control-Allow-Origin: origin and Vary: Origin. */
	int no_secret;
	char origin[256];
	tk_dbjob job;
	uint64_t seq;
	struct event *timer;
	int answered;
	int (*on_key)(tk_authreq *ar, const tk_apikey *k);
	void (*on_free)(tk_authreq *ar);
};

/*
 * Authenticate the client of `ar->req` from its headers and the parsed `form`.
 * ar->w, ar->req, ar->ri, on_key and on_free must be set. Either answers the
 * request itself (refusal, outage) or calls on_key, now or later; in every
 * case on_free is called once the request is answered. The caller must not
 * touch `ar` after this returns.
 */
void tk_auth_start(tk_authreq *ar, const tk_form *form);

/*
 * Read an OAuth endpoint's request (framing - Transfer-Encoding, repeated
 * Content-Length, folded headers - is refused for every endpoint by the
 * dispatcher in http.c): POST only (405 with Allow otherwise), no query string (400: credentials must not travel in
 * URIs), Content-Type application/x-www-form-urlencoded (400 otherwise), and
 * a body that tk_form_parse accepts with `repeatable` names (400
 * invalid_request otherwise). Returns 0 with `form` filled (caller frees), or
 * -1 after answering the request.
 */
int tk_oauth_read_form(tk_worker *w, struct evhttp_request *req, const tk_reqinfo *ri,
                       const char *const *repeatable, tk_form *form);

/* Free `ar` (the endpoint's struct through on_free), after on_key returned 1. */
void tk_auth_free(tk_authreq *ar);

/* Answer 503 temporarily_unavailable with Retry-After (counted as a db error). */
void tk_auth_unavailable(tk_worker *w, struct evhttp_request *req, const tk_reqinfo *ri);

/* Log and answer a refusal with the given OAuth error (400). */
void tk_auth_refuse(tk_authreq *ar, int status, const char *error, const char *description,
                    const char *reason);

#endif
