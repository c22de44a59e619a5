/*
 * reply.c - answering a request: the response with its metrics and access
 * log line, OAuth error bodies, the client's address, header counting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <jansson.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "server.h"

static const char *const ep_names[] = {
#define TK_EP_NAME(e, name) name,
	TK_ENDPOINTS(TK_EP_NAME)
#undef TK_EP_NAME
};

void tk_http_peer(struct evhttp_request *req, char *buf, size_t len)
{
	tk_req_peer(tk_req_ev(req), buf, len);
}

void tk_http_client(tk_worker *w, struct evhttp_request *req, char *buf, size_t len)
{
	tk_req_client(w, tk_req_ev(req), buf, len);
}

void tk_req_client(tk_worker *w, tk_req req, char *buf, size_t len)
{
	char peer[TK_ADDR_TEXT_MAX];
	tk_req_peer(req, peer, sizeof(peer));
	const tk_proxies *p = &w->srv->cfg->proxies;
	if (p->n == 0) {
		snprintf(buf, len, "%s", peer);
		return;
	}
	/* Every X-Forwarded-For field, in order, as one list; too long names nobody. */
	char xff[TK_XFF_MAX + 2];
	size_t n = 0;
	int any = 0, over = 0;
	const char *v;
	tk_req_cursor cur = TK_REQ_CURSOR_INIT;
	while ((v = tk_req_header_next(req, "X-Forwarded-For", &cur)) != NULL) {
		size_t vl = strlen(v);
		if (n + (any ? 1 : 0) + vl > TK_XFF_MAX) {
			over = 1;
			break;
		}
		if (any)
			xff[n++] = ',';
		memcpy(xff + n, v, vl);
		n += vl;
		any = 1;
	}
	xff[n] = '\0';
	if (over) {
		xff[0] = '?';   /* malformed on purpose: the peer is the client */
		xff[1] = '\0';
	}
	tk_proxies_client(p, peer, any ? xff : NULL, buf, len);
}

void tk_http_reply(tk_worker *w, struct evhttp_request *req, const tk_reqinfo *ri, int status,
                   const char *ctype, const char *body, size_t len)
{
	tk_req_reply(w, tk_req_ev(req), ri, status, ctype, body, len);
}

void tk_req_reply(tk_worker *w, tk_req req, const tk_reqinfo *ri, int status,
                  const char *ctype, const char *body, size_t len)
{
	tk_req_add_header(req, "X-Content-Type-Options", "nosniff");
	if (ri->id[0])
		tk_req_add_header(req, "X-Request-Id", ri->id);
	if (ctype)
		tk_req_add_header(req, "Content-Type", ctype);
	enum evhttp_cmd_type cmd = tk_req_method(req);
	if (cmd == EVHTTP_REQ_HEAD) {
		/* Never a body for HEAD (evhttp 2.1 would send it, without a
		 * Content-Length): the length a GET would have, and nothing else. */
		char n[24];
		snprintf(n, sizeof(n), "%zu", body ? len : 0);
		tk_req_add_header(req, "Content-Length", n);
		body = NULL;
		len = 0;
	}
	const char *reason = NULL;
	switch (status) {
	case 200: reason = "OK"; break;
	case 201: reason = "Created"; break;
	case 302: reason = "Found"; break;
	case 304: reason = "Not Modified"; break;
	case 400: reason = "Bad Request"; break;
	case 401: reason = "Unauthorized"; break;
	case 403: reason = "Forbidden"; break;
	case 409: reason = "Conflict"; break;
	case 422: reason = "Unprocessable Content"; break;
	case 404: reason = "Not Found"; break;
	case 405: reason = "Method Not Allowed"; break;
	case 413: reason = "Payload Too Large"; break;
	case 429: reason = "Too Many Requests"; break;
	case 500: reason = "Internal Server Error"; break;
	case 503: reason = "Service Unavailable"; break;
	default: reason = "Status"; break;
	}
	/* Read what we log before the reply may free the request; nothing of it
	 * when no line is written (the token path at log_level warning). */
	int logged = tk_log_enabled(TK_LOG_INFO) && ri->ep != EP_HEALTH && ri->ep != EP_READY &&
	             ri->ep != EP_METRICS;
	char method[8] = "", path[128] = "", peer[TK_ADDR_TEXT_MAX] = "";
	if (logged) {
		const char *uri = tk_req_uri(req);
		switch (cmd) {
		case EVHTTP_REQ_GET: strcpy(method, "GET"); break;
		case EVHTTP_REQ_POST: strcpy(method, "POST"); break;
		case EVHTTP_REQ_HEAD: strcpy(method, "HEAD"); break;
		case EVHTTP_REQ_OPTIONS: strcpy(method, "OPTIONS"); break;   /* CORS preflights */
		default: strcpy(method, "OTHER"); break;
		}
		snprintf(path, sizeof(path), "%s", uri ? uri : "");
		char *q = strchr(path, '?');
		if (q)
			*q = '\0';   /* never log a query string: it may carry credentials */
		tk_req_client(w, req, peer, sizeof(peer));
	}
	tk_req_response_begins(req);
	if (atomic_load_explicit(&w->srv->stopping, memory_order_relaxed))
		tk_req_add_header(req, "Connection", "close");   /* stopping: the last answer on it */

	/* Counted and logged before the answer is sent: the fast lane sends at
	 * once, and a client that has its answer must find the line written. */
	int64_t dur = tk_mono_us() - ri->start_us;
	tk_metrics_request(&w->metrics, ri->ep, status, (uint64_t)(dur < 0 ? 0 : dur));
	if (logged) {
		char st[8], us[24];
		snprintf(st, sizeof(st), "%d", status);
		snprintf(us, sizeof(us), "%lld", (long long)dur);
		tk_log(TK_LOG_INFO, "http.request", "req", ri->id, "method", method, "path", path,
		       TK_LOG_NUM "status", st, TK_LOG_NUM "us", us, "peer", peer, "endpoint", ep_names[ri->ep],
		       "client_id", ri->client_id, "trace_id", ri->trace_id[0] ? ri->trace_id : NULL,
		       "parent_id", ri->parent_id[0] ? ri->parent_id : NULL, NULL);
	}
	tk_req_send(req, status, reason, body, len);
}

void tk_http_oauth_error(tk_worker *w, struct evhttp_request *req, const tk_reqinfo *ri, int status,
                         const char *error, const char *description)
{
	tk_req_oauth_error(w, tk_req_ev(req), ri, status, error, description);
}

/* Append `raw` as it is, or `str` as a JSON string (quoted; '"', '\\' and
 * control characters escaped, as jansson writes them; other bytes as they are),
 * to buf (capacity cap, *n used). 0 when it does not fit, or `str` holds a
 * byte outside ASCII (the caller then lets jansson check its UTF-8). */
static int json_put(char *buf, size_t cap, size_t *n, const char *raw, const char *str)
{
	size_t at = *n;

	if (raw) {
		size_t len = strlen(raw);
		if (len > cap - at)
			return 0;
		memcpy(buf + at, raw, len);
		*n = at + len;
		return 1;
	}
	if (!str)
		return 0;
	if (at >= cap)
		return 0;
	buf[at++] = '"';
	for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
		char esc[8];
		size_t elen = 0;
		if (*p >= 0x80)
			return 0;              /* not ASCII: jansson checks it */
		switch (*p) {
		case '"': memcpy(esc, "\\\"", 2); elen = 2; break;
		case '\\': memcpy(esc, "\\\\", 2); elen = 2; break;
		case '\b': memcpy(esc, "\\b", 2); elen = 2; break;
		case '\f': memcpy(esc, "\\f", 2); elen = 2; break;
		case '\n': memcpy(esc, "\\n", 2); elen = 2; break;
		case '\r': memcpy(esc, "\\r", 2); elen = 2; break;
		case '\t': memcpy(esc, "\\t", 2); elen = 2; break;
		default:
			if (*p < 0x20)
				elen = (size_t)snprintf(esc, sizeof(esc), "\\u%04X", *p);
			else
				esc[elen++] = (char)*p;
		}
		if (elen > cap - at)
			return 0;
		memcpy(buf + at, esc, elen);
		at += elen;
	}
	if (at >= cap)
		return 0;
	buf[at++] = '"';
	*n = at;
	return 1;
}

void tk_req_oauth_error(tk_worker *w, tk_req req, const tk_reqinfo *ri, int status,
                        const char *error, const char *description)
{
	tk_req_add_header(req, "Cache-Control", "no-store");
	tk_req_add_header(req, "Pragma", "no-cache");
	/* Written straight into a buffer (every refused request takes this way:
	 * no JSON object built); what does not fit goes through jansson. */
	char buf[1024];
	size_t n = 0;
	if (json_put(buf, sizeof(buf), &n, "{\"error\":", NULL) && json_put(buf, sizeof(buf), &n, NULL, error) &&
	    json_put(buf, sizeof(buf), &n, ",\"error_description\":", NULL) &&
	    json_put(buf, sizeof(buf), &n, NULL, description) && json_put(buf, sizeof(buf), &n, "}", NULL)) {
		tk_req_reply(w, req, ri, status, "application/json", buf, n);
		return;
	}
	json_t *o = json_pack("{s:s, s:s}", "error", error, "error_description", description);
	char *body = json_dumps(o, JSON_COMPACT);
	tk_req_reply(w, req, ri, status, "application/json", body, body ? strlen(body) : 0);
	free(body);
	json_decref(o);
}

int tk_header_count(struct evkeyvalq *h, const char *name)
{
	int n = 0;
	for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next)
		if (strcasecmp(kv->key, name) == 0)
			n++;
	return n;
}
