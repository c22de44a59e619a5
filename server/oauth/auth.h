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

#include "keyauth.h"
#include "server.h"

/* tk_authreq (the request being authenticated, its on_key and on_free) is
 * http/keyauth.h's: the key-authentication core this module shares with the
 * admin API. tk_auth_start sets its `refuse` to OAuth's answers. */

/*
 * Authenticate the client of `ar->req` from its headers and the parsed `form`
 * (http/keyauth.c does the rest). ar->w, ar->req, ar->ri, on_key and on_free
 * must be set. Either answers the
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
int tk_oauth_read_form(tk_worker *w, tk_req req, const tk_reqinfo *ri,
                       const char *const *repeatable, tk_form *form);

/* Free `ar` (the endpoint's struct through on_free), after on_key returned 1. */
void tk_auth_free(tk_authreq *ar);

/* Answer 503 temporarily_unavailable with Retry-After (counted as a db error). */
void tk_auth_unavailable(tk_worker *w, tk_req req, const tk_reqinfo *ri);

/* Log and answer a refusal with the given OAuth error (400). */
void tk_auth_refuse(tk_authreq *ar, int status, const char *error, const char *description,
                    const char *reason);

#endif
