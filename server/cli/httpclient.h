/*
 * httpclient.h - a small blocking HTTP/1.1 client for the command line
 * (`tokend verify --jwks-url`, `tokend key ... --url`), on libevent's evhttp
 * client: one request per connection, http or https.
 *
 * https verifies the server certificate against the system CAs (or
 * $SSL_CERT_FILE / $SSL_CERT_DIR), TLS 1.2 or later, and the certificate must
 * match the host (an IP literal against its IP SANs, a name against its DNS
 * names; SNI is sent for names).
 */
#ifndef TOKEND_HTTPCLIENT_H
#define TOKEND_HTTPCLIENT_H

#include <stddef.h>

#define TK_HTTPC_TIMEOUT_DEFAULT 10                 /* seconds, whole exchange */
#define TK_HTTPC_BODY_MAX_DEFAULT (1024 * 1024)     /* response body cap */

typedef struct tk_httpc_url {
	int https;      /* 1 for https:// */
	int loopback;   /* localhost, 127.x.y.z or ::1 */
} tk_httpc_url;

typedef struct tk_httpc_request {
	const char *method;            /* "GET", "POST", "PUT", "PATCH" or "DELETE" */
	const char *url;               /* http:// or https:// with a host */
	const char *const *headers;    /* name, value, name, value, ..., NULL (or NULL) */
	const char *body;              /* request body, or NULL */
	size_t body_len;
	int timeout;                   /* seconds for the whole exchange; 0: the default */
	size_t max_body;               /* response body cap; 0: the default */
	const char *user_agent;        /* NULL: "tokend" */
} tk_httpc_request;

typedef struct tk_httpc_response {
	int status;          /* HTTP status; 0 when no response came */
	char *body;          /* malloc'd, NUL-terminated (NULL without a response) */
	size_t len;
	char **headers;      /* name, value pairs, malloc'd copies */
	size_t nheaders;
	char error[320];     /* without a response: why (one line, no secrets) */
	int timed_out;       /* without a response: the deadline passed */
	int tls_failed;      /* without a response: TLS set-up, handshake or certificate */
	int too_large;       /* the response body was over the cap (status 0, body NULL) */
} tk_httpc_response;

/*
 * Check `url`: an http:// or https:// URL with a host and no user info.
 * Returns 0 (with *info filled when not NULL), or -1 with *why set to
 * "not a valid URL", "must be an http:// or https:// URL with a host" or
 * "credentials in the URL are not supported".
 */
int tk_httpc_url_check(const char *url, tk_httpc_url *info, const char **why);

/*
 * Send one request and wait for the answer. Returns 0 when a response came
 * (any status: see resp->status), -1 when none did (resp->error says why;
 * a malformed URL is also -1). Always call tk_httpc_response_free(resp).
 */
int tk_httpc_send(const tk_httpc_request *rq, tk_httpc_response *resp);

/* A response header (case-insensitive name), or NULL. */
const char *tk_httpc_header(const tk_httpc_response *resp, const char *name);

/* Wipe and free the body and headers (they may hold tokens or secrets). */
void tk_httpc_response_free(tk_httpc_response *resp);

#endif
