/*
 * httpclient.c - a small blocking HTTP/1.1 client on libevent (http and https).
 * See httpclient.h.
 */
#include "httpclient.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <tokend/crypto.h>

struct exchange {
	struct event_base *base;
	tk_httpc_response *resp;
	size_t max_body;
	const char *failure;        /* static reason, NULL when fine */
	int done;
};

static void size_text(size_t n, char *out, size_t outlen)
{
	if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
		snprintf(out, outlen, "%zu MiB", n / (1024 * 1024));
	else if (n >= 1024 && n % 1024 == 0)
		snprintf(out, outlen, "%zu KiB", n / 1024);
	else
		snprintf(out, outlen, "%zu bytes", n);
}

static void error_cb(enum evhttp_request_error e, void *arg)
{
	struct exchange *x = arg;
	switch (e) {
	case EVREQ_HTTP_TIMEOUT:
		x->failure = "timed out";
		x->resp->timed_out = 1;
		break;
	case EVREQ_HTTP_DATA_TOO_LONG:
		x->failure = "too large";
		x->resp->too_large = 1;
		break;
	case EVREQ_HTTP_INVALID_HEADER:
		x->failure = "invalid response header";
		break;
	case EVREQ_HTTP_EOF:
		x->failure = "connection closed early";
		break;
	default:
		x->failure = "connection failed";
		break;
	}
}

static void done_cb(struct evhttp_request *req, void *arg)
{
	struct exchange *x = arg;
	tk_httpc_response *resp = x->resp;

	x->done = 1;
	if (req == NULL || evhttp_request_get_response_code(req) == 0) {
		if (x->failure == NULL)
			x->failure = "connection failed";
		event_base_loopbreak(x->base);
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	if (n > x->max_body) {
		x->failure = "too large";
		resp->too_large = 1;
		event_base_loopbreak(x->base);
		return;
	}
	resp->body = malloc(n + 1);
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct evkeyval *kv;
	size_t nh = 0;
	TAILQ_FOREACH(kv, h, next)
		nh++;
	resp->headers = calloc(2 * nh + 1, sizeof(char *));
	if (resp->body == NULL || resp->headers == NULL) {
		x->failure = "out of memory";
		event_base_loopbreak(x->base);
		return;
	}
	evbuffer_remove(in, resp->body, n);
	resp->body[n] = '\0';
	resp->len = n;
	TAILQ_FOREACH(kv, h, next) {
		char *k = strdup(kv->key), *v = strdup(kv->value);
		if (k == NULL || v == NULL) {
			free(k);
			free(v);
			continue;
		}
		resp->headers[2 * resp->nheaders] = k;
		resp->headers[2 * resp->nheaders + 1] = v;
		resp->nheaders++;
	}
	resp->status = evhttp_request_get_response_code(req);
	event_base_loopbreak(x->base);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exchange *x = arg;
	(void)fd;
	(void)what;
	if (!x->done) {
		x->failure = "timed out";
		x->resp->timed_out = 1;
	}
	event_base_loopbreak(x->base);
}

static int is_loopback(const char *host)
{
	return strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	       strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0;
}

int tk_httpc_url_check(const char *url, tk_httpc_url *info, const char **why)
{
	struct evhttp_uri *uri = url ? evhttp_uri_parse(url) : NULL;
	if (uri == NULL) {
		*why = "not a valid URL";
		return -1;
	}
	const char *scheme = evhttp_uri_get_scheme(uri), *host = evhttp_uri_get_host(uri);
	int rc = 0;
	if (scheme == NULL || host == NULL || *host == '\0' ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		*why = "must be an http:// or https:// URL with a host";
		rc = -1;
	} else if (evhttp_uri_get_userinfo(uri) != NULL) {
		*why = "credentials in the URL are not supported";
		rc = -1;
	} else if (info != NULL) {
		info->https = strcmp(scheme, "https") == 0;
		info->loopback = is_loopback(host);
	}
	evhttp_uri_free(uri);
	return rc;
}

/* A TLS client: system CAs, TLS 1.2+, the certificate must match `host`. */
static SSL *tls_for(SSL_CTX **ctx_out, const char *host)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;

	*ctx_out = ctx;
	if (ctx == NULL || SSL_CTX_set_default_verify_paths(ctx) != 1 ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		return NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ssl = SSL_new(ctx);
	if (ssl == NULL)
		return NULL;
	X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
	/* An IP literal is matched against IP SANs, a name against DNS names. */
	if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1) {
		ERR_clear_error();
		char name[256];              /* SSL_set_tlsext_host_name takes a non-const */
		snprintf(name, sizeof(name), "%s", host);
		if (strlen(host) >= sizeof(name) || SSL_set_tlsext_host_name(ssl, name) != 1 ||
		    SSL_set1_host(ssl, host) != 1) {
			SSL_free(ssl);
			return NULL;
		}
	}
	return ssl;
}

static int method_of(const char *m, enum evhttp_cmd_type *cmd)
{
	static const struct { const char *name; enum evhttp_cmd_type cmd; } methods[] = {
		{ "GET", EVHTTP_REQ_GET }, { "POST", EVHTTP_REQ_POST }, { "PUT", EVHTTP_REQ_PUT },
		{ "PATCH", EVHTTP_REQ_PATCH }, { "DELETE", EVHTTP_REQ_DELETE },
	};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (m && strcmp(m, methods[i].name) == 0) {
			*cmd = methods[i].cmd;
			return 0;
		}
	return -1;
}

int tk_httpc_send(const tk_httpc_request *rq, tk_httpc_response *resp)
{
	struct exchange x = { 0 };
	struct evhttp_uri *uri = NULL;
	struct evdns_base *dns = NULL;
	struct evhttp_connection *conn = NULL;
	struct evhttp_request *req = NULL;
	struct bufferevent *bev = NULL;
	struct event *deadline = NULL;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	enum evhttp_cmd_type cmd;
	char target[4096], hostbuf[256], limit[32];
	const char *why;
	int timeout = rq->timeout > 0 ? rq->timeout : TK_HTTPC_TIMEOUT_DEFAULT;

	memset(resp, 0, sizeof(*resp));
	x.resp = resp;
	x.max_body = rq->max_body ? rq->max_body : TK_HTTPC_BODY_MAX_DEFAULT;
	if (method_of(rq->method, &cmd) != 0) {
		snprintf(resp->error, sizeof(resp->error), "unsupported method");
		return -1;
	}
	if (tk_httpc_url_check(rq->url, NULL, &why) != 0) {
		snprintf(resp->error, sizeof(resp->error), "%s", why);
		return -1;
	}
	uri = evhttp_uri_parse(rq->url);
	if (uri == NULL) {
		snprintf(resp->error, sizeof(resp->error), "not a valid URL");
		return -1;
	}
	const char *host = evhttp_uri_get_host(uri), *path = evhttp_uri_get_path(uri);
	const char *query = evhttp_uri_get_query(uri);
	int https = strcmp(evhttp_uri_get_scheme(uri), "https") == 0;
	int port = evhttp_uri_get_port(uri);
	if (port < 0)
		port = https ? 443 : 80;
	/* An IPv6 literal comes bracketed; connect (and match certificates) without. */
	size_t hl = strlen(host);
	if (hl >= sizeof(hostbuf)) {
		snprintf(resp->error, sizeof(resp->error), "host name too long");
		evhttp_uri_free(uri);
		return -1;
	}
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
		memcpy(hostbuf, host + 1, hl - 2);
		hostbuf[hl - 2] = '\0';
	} else {
		memcpy(hostbuf, host, hl + 1);
	}
	if ((size_t)snprintf(target, sizeof(target), "%s%s%s", path && *path ? path : "/", query ? "?" : "",
	                     query ? query : "") >= sizeof(target)) {
		snprintf(resp->error, sizeof(resp->error), "URL too long");
		evhttp_uri_free(uri);
		return -1;
	}

	x.base = event_base_new();
	if (x.base == NULL) {
		snprintf(resp->error, sizeof(resp->error), "cannot create an event loop");
		evhttp_uri_free(uri);
		return -1;
	}
	dns = evdns_base_new(x.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (https) {
		ssl = tls_for(&ctx, hostbuf);
		if (ssl != NULL)
			bev = bufferevent_openssl_socket_new(x.base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
			                                     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (bev == NULL) {
			x.failure = "cannot set up TLS";
			resp->tls_failed = 1;
			SSL_free(ssl);      /* not owned by a bufferevent */
			ssl = NULL;
			goto done;
		}
		/* The bufferevent owns ssl now; the connection owns the bufferevent. */
		conn = evhttp_connection_base_bufferevent_new(x.base, dns, bev, hostbuf, (unsigned short)port);
	} else {
		conn = evhttp_connection_base_new(x.base, dns, hostbuf, (unsigned short)port);
	}
	if (conn == NULL) {
		x.failure = "cannot create an HTTP connection";
		if (bev != NULL)
			bufferevent_free(bev);
		bev = NULL;
		ssl = NULL;
		goto done;
	}
	evhttp_connection_set_timeout(conn, timeout);
	evhttp_connection_set_retries(conn, 0);
	evhttp_connection_set_max_body_size(conn, (ev_ssize_t)x.max_body);
	evhttp_connection_set_max_headers_size(conn, 16 * 1024);

	req = evhttp_request_new(done_cb, &x);
	if (req == NULL) {
		x.failure = "out of memory";
		goto done;
	}
	evhttp_request_set_error_cb(req, error_cb);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char hosthdr[300];
	if (evhttp_uri_get_port(uri) >= 0)
		snprintf(hosthdr, sizeof(hosthdr), "%s:%d", host, port);
	else
		snprintf(hosthdr, sizeof(hosthdr), "%s", host);
	evhttp_add_header(h, "Host", hosthdr);
	evhttp_add_header(h, "Connection", "close");
	evhttp_add_header(h, "User-Agent", rq->user_agent ? rq->user_agent : "tokend");
	for (size_t i = 0; rq->headers && rq->headers[i] && rq->headers[i + 1]; i += 2)
		evhttp_add_header(h, rq->headers[i], rq->headers[i + 1]);
	if (rq->body != NULL || cmd == EVHTTP_REQ_POST || cmd == EVHTTP_REQ_PUT || cmd == EVHTTP_REQ_PATCH) {
		char cl[32];
		snprintf(cl, sizeof(cl), "%zu", rq->body ? rq->body_len : 0);
		evhttp_remove_header(h, "Content-Length");
		evhttp_add_header(h, "Content-Length", cl);
		if (rq->body != NULL && rq->body_len > 0)
			evbuffer_add(evhttp_request_get_output_buffer(req), rq->body, rq->body_len);
	}
	if (evhttp_make_request(conn, req, cmd, target) != 0) {
		req = NULL;              /* freed by libevent on failure */
		x.failure = "cannot send the request";
		goto done;
	}
	deadline = evtimer_new(x.base, deadline_cb, &x);
	struct timeval tv = { timeout, 0 };
	if (deadline == NULL || evtimer_add(deadline, &tv) != 0) {
		x.failure = "cannot arm the timeout";
		goto done;
	}
	event_base_dispatch(x.base);
	if (resp->status == 0 && x.failure == NULL)
		x.failure = "no response";
	if (resp->status == 0 && !resp->timed_out && !resp->too_large) {
		/* A name that does not resolve says so, rather than "connection closed". */
		struct bufferevent *cb = evhttp_connection_get_bufferevent(conn);
		int dnserr = cb ? bufferevent_socket_get_dns_error(cb) : 0;
		if (dnserr != 0) {
			snprintf(resp->error, sizeof(resp->error), "cannot resolve %s (%s)", hostbuf,
			         evutil_gai_strerror(dnserr));
			goto done;
		}
		if (x.failure != NULL && strcmp(x.failure, "connection failed") == 0) {
			snprintf(resp->error, sizeof(resp->error), "cannot connect to %s port %d", hostbuf, port);
			if (ssl == NULL || SSL_get_verify_result(ssl) == X509_V_OK)
				goto done;
		}
	}
	if (resp->status == 0 && ssl != NULL && !resp->timed_out) {
		/* Say why TLS failed rather than "connection closed". */
		long vr = SSL_get_verify_result(ssl);
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (vr != X509_V_OK) {
			snprintf(resp->error, sizeof(resp->error), "TLS: server certificate not accepted (%s)",
			         X509_verify_cert_error_string(vr));
			resp->tls_failed = 1;
		} else if (e != 0) {
			const char *r = ERR_reason_error_string(e);
			snprintf(resp->error, sizeof(resp->error), "TLS handshake failed (%s)", r ? r : "?");
			resp->tls_failed = 1;
		}
	}
done:
	if (resp->status == 0 && resp->error[0] == '\0') {
		if (resp->too_large) {
			size_text(x.max_body, limit, sizeof(limit));
			snprintf(resp->error, sizeof(resp->error), "response larger than %s", limit);
		} else {
			snprintf(resp->error, sizeof(resp->error), "%s", x.failure ? x.failure : "no response");
		}
	}
	if (deadline != NULL)
		event_free(deadline);
	if (conn != NULL)
		evhttp_connection_free(conn);   /* also frees a pending request and bev */
	if (dns != NULL)
		evdns_base_free(dns, 0);
	event_base_free(x.base);
	SSL_CTX_free(ctx);
	evhttp_uri_free(uri);
	ERR_clear_error();
	if (resp->status == 0) {
		if (resp->body != NULL) {
			tk_wipe(resp->body, resp->len);
			free(resp->body);
			resp->body = NULL;
		}
		resp->len = 0;
		return -1;
	}
	return 0;
}

const char *tk_httpc_header(const tk_httpc_response *resp, const char *name)
{
	for (size_t i = 0; i < resp->nheaders; i++)
		if (strcasecmp(resp->headers[2 * i], name) == 0)
			return resp->headers[2 * i + 1];
	return NULL;
}

void tk_httpc_response_free(tk_httpc_response *resp)
{
	if (resp->body != NULL) {
		tk_wipe(resp->body, resp->len);
		free(resp->body);
	}
	for (size_t i = 0; i < 2 * resp->nheaders; i++) {
		tk_wipe(resp->headers[i], strlen(resp->headers[i]));
		free(resp->headers[i]);
	}
	free(resp->headers);
	resp->body = NULL;
	resp->headers = NULL;
	resp->len = 0;
	resp->nheaders = 0;
}
