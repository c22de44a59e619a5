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

void tk_auth_free(tk_authreq *ar)
{
	tk_keyauth_free(ar);
}

/* The OAuth answers of the key-authentication core's refusals (keyauth.h). */
static void oauth_refuse(tk_authreq *ar, int status, int wait)
{
	char ra[16];
	switch (status) {
	case 429:
		snprintf(ra, sizeof(ra), "%d", wait);
		tk_req_add_header(ar->req, "Retry-After", ra);
		tk_req_oauth_error(ar->w, ar->req, &ar->ri, 429, "too_many_requests",
		                   "too many failed authentications; retry later");
		break;
	case 401:
		if (ar->basic)
			tk_req_add_header(ar->req, "WWW-Authenticate", "Basic realm=\"tokend\", charset=\"UTF-8\"");
		tk_req_oauth_error(ar->w, ar->req, &ar->ri, 401, "invalid_client", AUTH_FAILED);
		break;
	case 503:
		tk_req_add_header(ar->req, "Retry-After", "1");
		tk_req_oauth_error(ar->w, ar->req, &ar->ri, 503, "temporarily_unavailable",
		                   "the key store is unavailable; retry shortly");
		break;
	default:
		tk_req_oauth_error(ar->w, ar->req, &ar->ri, 500, "server_error", "internal error");
		break;
	}
}

void tk_auth_unavailable(tk_worker *w, tk_req req, const tk_reqinfo *ri)
{
	tk_metric_add(&w->metrics.db_errors, 1);
	tk_req_add_header(req, "Retry-After", "1");
	tk_req_oauth_error(w, req, ri, 503, "temporarily_unavailable",
	                   "the key store is unavailable; retry shortly");
}

void tk_auth_refuse(tk_authreq *ar, int status, const char *error, const char *description,
                    const char *reason)
{
	tk_log(TK_LOG_INFO, tk_keyauth_event(ar), "req", ar->ri.id, "client_id", ar->ri.client_id, "reason", reason, NULL);
	tk_req_oauth_error(ar->w, ar->req, &ar->ri, status, error, description);
}

int tk_oauth_read_form(tk_worker *w, tk_req req, const tk_reqinfo *ri,
                       const char *const *repeatable, tk_form *form)
{
	memset(form, 0, sizeof(*form));
	if (tk_req_method(req) != EVHTTP_REQ_POST) {
		tk_req_add_header(req, "Allow", "POST");
		tk_req_oauth_error(w, req, ri, 405, "invalid_request", "use POST");
		return -1;
	}
	if (strchr(tk_req_uri(req), '?')) {
		tk_req_oauth_error(w, req, ri, 400, "invalid_request",
		                   "parameters must be sent in the request body, not the URI");
		return -1;
	}
	const char *ctype = tk_req_header(req, "Content-Type");
	static const char form_type[] = "application/x-www-form-urlencoded";
	const size_t flen = sizeof(form_type) - 1;
	if (!ctype || strncasecmp(ctype, form_type, flen) != 0 ||
	    (ctype[flen] != '\0' && ctype[flen] != ';' && ctype[flen] != ' ')) {
		tk_req_oauth_error(w, req, ri, 400, "invalid_request",
		                   "the body must be application/x-www-form-urlencoded");
		return -1;
	}
	size_t blen = 0;
	const char *bdata = tk_req_body(req, &blen);
	if (blen > (size_t)TK_AT_LEAST(w->srv->cfg->max_body_size, TK_TOKEN_BODY_MIN)) {
		tk_req_add_header(req, "Connection", "close");
		tk_req_oauth_error(w, req, ri, 413, "invalid_request", "the request body is too large");
		return -1;
	}
	const char *why = NULL;
	if (tk_form_parse(bdata, blen, repeatable, form, &why) != 0) {
		tk_req_oauth_error(w, req, ri, 400, "invalid_request", why);
		return -1;
	}
	return 0;
}

void tk_auth_start(tk_authreq *ar, const tk_form *form)
{
	tk_worker *w = ar->w;
	tk_req req = ar->req;
	char *basic_id = NULL, *basic_secret = NULL;
	const char *secret = NULL, *why = NULL;

	ar->refuse = oauth_refuse;
	/* An address that failed too often: what can never authenticate (no,
	 * malformed or double credentials) is refused before any work; a
	 * well-formed credential is judged as usual, and only a right secret
	 * for a usable key passes (keyauth.c): behind a proxy the address is
	 * every client's, and the README promises a holder is never locked out. */
	tk_keyauth_begin(ar);
	const char *authz = tk_req_header(req, "Authorization");
	const char *body_id = tk_form_get_nonempty(form, "client_id");
	const char *body_secret = tk_form_get(form, "client_secret");
	if (tk_req_header_count(req, "Authorization") > 1) {
		tk_req_oauth_error(w, req, &ar->ri, 400, "invalid_request", "more than one Authorization header");
		goto done;
	}
	if (tk_form_get(form, "client_assertion") || tk_form_get(form, "client_assertion_type")) {
		tk_req_oauth_error(w, req, &ar->ri, 400, "invalid_request",
		                   "client assertions are not supported; use client_secret_basic or client_secret_post");
		goto done;
	}
	if (authz) {
		ar->basic = 1;
		if (body_secret) {
			tk_req_oauth_error(w, req, &ar->ri, 400, "invalid_request",
			                   "use one client authentication method, not Basic and client_secret together");
			goto done;
		}
		if (tk_basic_parse(authz, strlen(authz), &basic_id, &basic_secret, &why) != 0) {
			tk_keyauth_failed(ar, "malformed_basic");
			goto done;
		}
		if (body_id && strcmp(body_id, basic_id) != 0) {
			tk_req_oauth_error(w, req, &ar->ri, 400, "invalid_request",
			                   "client_id in the body differs from the Basic credentials");
			goto done;
		}
		body_id = basic_id;
		secret = basic_secret;
	} else if (body_id && !body_secret && ar->ri.ep == EP_TOKEN) {
		/* A publishable key's request: its ID alone, judged with its origin. */
		ar->no_secret = 1;
		const char *origin = tk_req_header(req, "Origin");
		if (origin && tk_req_header_count(req, "Origin") == 1 && strlen(origin) < sizeof(ar->origin))
			memcpy(ar->origin, origin, strlen(origin) + 1);
		/* Not from a browser: a refusal tells the client how to authenticate,
		 * as it did before publishable keys (never a Basic challenge to a page). */
		ar->basic = origin == NULL;
	} else {
		if (!body_id || !body_secret) {
			ar->basic = 1;   /* no credentials at all: tell the client how to authenticate */
			tk_keyauth_failed(ar, "no_credentials");
			goto done;
		}
		secret = body_secret;
	}
	/* Format and checksums, HMAC, lookup, compare, state: keyauth.c, which
	 * answers (through oauth_refuse, or on_key) and frees. */
	tk_keyauth_run(ar, body_id, secret);
	tk_basic_free(basic_id, basic_secret);
	return;
done:
	tk_basic_free(basic_id, basic_secret);
	tk_auth_free(ar);
}
