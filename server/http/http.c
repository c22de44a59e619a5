/*
 * http.c - worker threads: one event_base and evhttp each on the shared
 * port, the route table, responses, access log, last-used batching.
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include <jansson.h>

#include "admin.h"
#include "conn.h"
#include "log.h"
#include "server.h"

int64_t tk_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void tk_metrics_request(tk_metrics *m, tk_endpoint ep, int status, uint64_t micros)
{
	static const int codes[] = {
#define TK_CODE(c) c,
		TK_STATUS_CODES(TK_CODE)
#undef TK_CODE
	};
	int idx = TK_ST_COUNT - 1;
	for (int i = 0; i < TK_ST_COUNT - 1; i++)
		if (codes[i] == status)
			idx = i;
	tk_metric_add(&m->requests[ep][idx], 1);
	if (ep != EP_TOKEN)
		return;
	static const uint64_t bounds[] = {
#define TK_B(b) b,
		TK_LAT_BUCKETS(TK_B)
#undef TK_B
	};
	int b = TK_LAT_COUNT - 1;
	for (int i = 0; i < TK_LAT_COUNT - 1; i++)
		if (micros <= bounds[i]) {
			b = i;
			break;
		}
	tk_metric_add(&m->latency[b], 1);
	tk_metric_add(&m->latency_sum_us, micros);
}

static const char *const ep_names[] = {
#define TK_EP_NAME(e, name) name,
	TK_ENDPOINTS(TK_EP_NAME)
#undef TK_EP_NAME
};

void tk_http_peer(struct evhttp_request *req, char *buf, size_t len)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port = 0;
	if (evcon)
		evhttp_connection_get_peer(evcon, &addr, &port);
	snprintf(buf, len, "%s", addr ? addr : "");
}

void tk_http_client(tk_worker *w, struct evhttp_request *req, char *buf, size_t len)
{
	char peer[TK_ADDR_TEXT_MAX];
	tk_http_peer(req, peer, sizeof(peer));
	const tk_proxies *p = &w->srv->cfg->proxies;
	if (p->n == 0) {
		snprintf(buf, len, "%s", peer);
		return;
	}
	/* Every X-Forwarded-For field, in order, as one list; too long names nobody. */
	char xff[TK_XFF_MAX + 2];
	size_t n = 0;
	int any = 0, over = 0;
	struct evkeyval *h;
	TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next) {
		if (strcasecmp(h->key, "X-Forwarded-For") != 0)
			continue;
		size_t vl = strlen(h->value);
		if (n + (any ? 1 : 0) + vl > TK_XFF_MAX) {
			over = 1;
			break;
		}
		if (any)
			xff[n++] = ',';
		memcpy(xff + n, h->value, vl);
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
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
	if (ctype)
		evhttp_add_header(out, "Content-Type", ctype);
	struct evbuffer *buf = evbuffer_new();
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* Never a body for HEAD (evhttp 2.1 would send it, without a
		 * Content-Length): the length a GET would have, and nothing else. */
		char n[24];
		snprintf(n, sizeof(n), "%zu", body ? len : 0);
		evhttp_add_header(out, "Content-Length", n);
	} else if (body && len) {
		evbuffer_add(buf, body, len);
	}
	const char *reason = NULL;
	switch (status) {
	case 200: reason = "OK"; break;
	case 201: reason = "Created"; break;
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
	/* Read what we log before the reply may free the request. */
	const char *uri = evhttp_request_get_uri(req);
	char method[8];
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET: strcpy(method, "GET"); break;
	case EVHTTP_REQ_POST: strcpy(method, "POST"); break;
	case EVHTTP_REQ_HEAD: strcpy(method, "HEAD"); break;
	default: strcpy(method, "OTHER"); break;
	}
	char path[128];
	snprintf(path, sizeof(path), "%s", uri ? uri : "");
	char *q = strchr(path, '?');
	if (q)
		*q = '\0';   /* never log a query string: it may carry credentials */
	char peer[TK_ADDR_TEXT_MAX];
	tk_http_client(w, req, peer, sizeof(peer));
	tk_conn_response_begins(req);
	if (atomic_load_explicit(&w->srv->stopping, memory_order_relaxed))
		evhttp_add_header(out, "Connection", "close");   /* stopping: the last answer on it */
	evhttp_send_reply(req, status, reason, buf);
	evbuffer_free(buf);

	int64_t dur = tk_now_us() - ri->start_us;
	tk_metrics_request(&w->metrics, ri->ep, status, (uint64_t)(dur < 0 ? 0 : dur));
	if (tk_log_enabled(TK_LOG_INFO) && ri->ep != EP_HEALTH && ri->ep != EP_READY && ri->ep != EP_METRICS) {
		char st[8], us[24];
		snprintf(st, sizeof(st), "%d", status);
		snprintf(us, sizeof(us), "%lld", (long long)dur);
		tk_log(TK_LOG_INFO, "http.request", "req", ri->id, "method", method, "path", path,
		       "status", st, "us", us, "peer", peer, "endpoint", ep_names[ri->ep],
		       "client_id", ri->client_id, NULL);
	}
}

void tk_http_oauth_error(tk_worker *w, struct evhttp_request *req, const tk_reqinfo *ri, int status,
                         const char *error, const char *description)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	evhttp_add_header(out, "Cache-Control", "no-store");
	evhttp_add_header(out, "Pragma", "no-cache");
	json_t *o = json_pack("{s:s, s:s}", "error", error, "error_description", description);
	char *body = json_dumps(o, JSON_COMPACT);
	tk_http_reply(w, req, ri, status, "application/json", body, body ? strlen(body) : 0);
	free(body);
	json_decref(o);
}

/* ---- routing ---- */

typedef void (*route_fn)(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri);

static const struct route {
	const char *path;
	tk_endpoint ep;
	route_fn fn;
} routes[] = {
	{ "/oauth2/token", EP_TOKEN, tk_token_handle },
	{ "/oauth2/introspect", EP_INTROSPECT, tk_introspect_handle },
	{ "/oauth2/revoke", EP_REVOKE, tk_revoke_handle },
	{ "/.well-known/jwks.json", EP_JWKS, tk_jwks_handle },
	{ "/.well-known/oauth-authorization-server", EP_METADATA, tk_metadata_handle },
	{ "/healthz", EP_HEALTH, tk_healthz_handle },
	{ "/readyz", EP_READY, tk_readyz_handle },
	{ "/metrics", EP_METRICS, tk_metrics_handle },
};

int tk_header_count(struct evkeyvalq *h, const char *name)
{
	int n = 0;
	for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next)
		if (strcasecmp(kv->key, name) == 0)
			n++;
	return n;
}

/*
 * Message framing every endpoint refuses, before any routing (request
 * smuggling shapes, RFC 9112 sections 5.2 and 6.3). conn.c's scanner refuses
 * these (and more) before evhttp reads the request; this is the second line,
 * for a connection served untracked (conn.c out of memory): Transfer-Encoding
 * (no endpoint takes a chunked body), more than one Content-Length, a body on
 * a method without one. 400, and the connection is closed: where one request
 * ends can no longer be trusted.
 */
static int refuse_bad_framing(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *why = NULL;
	const char *cl = evhttp_find_header(in, "Content-Length");
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	int bodiless = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD || cmd == EVHTTP_REQ_DELETE ||
	               cmd == EVHTTP_REQ_OPTIONS || cmd == EVHTTP_REQ_TRACE;
	if (evhttp_find_header(in, "Transfer-Encoding"))
		why = "send the body with a single Content-Length, not Transfer-Encoding";
	else if (tk_header_count(in, "Content-Length") > 1)
		why = "send the body with a single Content-Length";
	else if (bodiless && cl && strspn(cl, "0") != strlen(cl))
		why = "a request with this method must not have a body";
	if (!why)
		return 0;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	tk_http_oauth_error(w, req, ri, 400, "invalid_request", why);
	return 1;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	tk_worker *w = arg;
	tk_reqinfo ri = { .ep = EP_OTHER, .start_us = tk_now_us() };
	snprintf(ri.id, sizeof(ri.id), "%d-%llu", w->index, (unsigned long long)++w->reqseq);
	tk_worker_keys_refresh(w);
	tk_conn_request_begins(req);
	if (refuse_bad_framing(w, req, &ri))
		return;
	const char *uri = evhttp_request_get_uri(req);
	size_t plen = strcspn(uri ? uri : "", "?");
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strlen(routes[i].path) == plen && memcmp(routes[i].path, uri, plen) == 0) {
			ri.ep = routes[i].ep;
			routes[i].fn(w, req, &ri);
			return;
		}
	}
	if (plen > 10 && strncmp(uri, "/admin/v1/", 10) == 0 && !w->srv->cfg->admin_listen_port) {
		ri.ep = EP_ADMIN;
		return tk_admin_handle(w, req, &ri);
	}
	static const char nf[] = "{\"error\":\"not_found\",\"error_description\":\"no such endpoint\"}";
	tk_http_reply(w, req, &ri, 404, "application/json", nf, sizeof(nf) - 1);
}

/* The admin listener (admin_listen_port set): the admin API and health only. */
static void on_admin_request(struct evhttp_request *req, void *arg)
{
	tk_worker *w = arg;
	tk_reqinfo ri = { .ep = EP_ADMIN, .start_us = tk_now_us() };
	snprintf(ri.id, sizeof(ri.id), "%d-%llu", w->index, (unsigned long long)++w->reqseq);
	tk_worker_keys_refresh(w);
	tk_conn_request_begins(req);
	if (refuse_bad_framing(w, req, &ri))
		return;
	const char *uri = evhttp_request_get_uri(req);
	size_t plen = strcspn(uri, "?");
	if (plen > 10 && strncmp(uri, "/admin/v1/", 10) == 0)
		return tk_admin_handle(w, req, &ri);
	if (plen == 8 && strncmp(uri, "/healthz", 8) == 0) {
		ri.ep = EP_HEALTH;
		return tk_healthz_handle(w, req, &ri);
	}
	static const char nf[] = "{\"error\":\"not_found\",\"error_description\":\"no such endpoint\"}";
	tk_http_reply(w, req, &ri, 404, "application/json", nf, sizeof(nf) - 1);
}

/* ---- last-used batching ---- */

static uint64_t id_hash(const char *id)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *id; id++) {
		h ^= (unsigned char)*id;
		h *= 1099511628211ULL;
	}
	return h;
}

/* Insert or update; returns 0, or -1 when full. */
static int lastused_put(tk_lastused *lu, const char *key_id, int64_t t)
{
	if (lu->cap == 0 || (lu->n + 1) * 4 > lu->cap * 3) {
		size_t cap = lu->cap ? lu->cap * 2 : 256;
		if (cap > TK_LASTUSED_MAX * 2 && lu->cap)
			cap = lu->cap;   /* at the bound: keep probing the table we have */
		if (cap != lu->cap) {
			char (*ids)[TK_KEY_ID_LEN + 1] = calloc(cap, sizeof(*ids));
			int64_t *times = calloc(cap, sizeof(*times));
			if (!ids || !times) {
				free(ids);
				free(times);
				return -1;
			}
			for (size_t i = 0; i < lu->cap; i++) {
				if (!lu->ids[i][0])
					continue;
				size_t j = id_hash(lu->ids[i]) & (cap - 1);
				while (ids[j][0])
					j = (j + 1) & (cap - 1);
				memcpy(ids[j], lu->ids[i], sizeof(ids[j]));
				times[j] = lu->times[i];
			}
			free(lu->ids);
			free(lu->times);
			lu->ids = ids;
			lu->times = times;
			lu->cap = cap;
		}
	}
	size_t j = id_hash(key_id) & (lu->cap - 1);
	while (lu->ids[j][0]) {
		if (strcmp(lu->ids[j], key_id) == 0) {
			if (t > lu->times[j])
				lu->times[j] = t;
			return 0;
		}
		j = (j + 1) & (lu->cap - 1);
	}
	if (lu->n >= TK_LASTUSED_MAX)
		return -1;
	snprintf(lu->ids[j], sizeof(lu->ids[j]), "%s", key_id);
	lu->times[j] = t;
	lu->n++;
	return 0;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg);

int64_t tk_lastused_pending(const tk_worker *w, const char *key_id)
{
	const tk_lastused *lu = &w->lastused;
	if (lu->cap == 0)
		return 0;
	for (size_t j = id_hash(key_id) & (lu->cap - 1); lu->ids[j][0]; j = (j + 1) & (lu->cap - 1))
		if (strcmp(lu->ids[j], key_id) == 0)
			return lu->times[j];
	return 0;
}

void tk_lastused_mark(tk_worker *w, const tk_key *k)
{
	int64_t now = (int64_t)time(NULL);
	lastused_put(&w->lastused, k->id, now);
	int64_t stale = now - (TK_RECENT_USE_WINDOW - w->srv->cfg->last_used_flush_interval - 60);
	/* The only field of a shared, otherwise immutable key that moves (atomic):
	 * one worker wins. The uintptr_t cast drops const on purpose. */
	_Atomic int64_t *known = (_Atomic int64_t *)(uintptr_t)&k->last_used_at;
	int64_t prev = atomic_load(known);
	if (prev >= stale || !atomic_compare_exchange_strong(known, &prev, now))
		return;
	if (w->flush_inflight)
		w->flush_again = 1;
	else
		flush_cb(-1, 0, w);
}

static void flush_done(tk_dbjob *job)
{
	tk_worker *w = job->arg;
	if (job->status != TK_DBJOB_OK) {
		/* Merge the batch back (newest time wins): nothing is lost while the
		 * database is away, and memory stays bounded by the number of keys. */
		for (size_t i = 0; i < job->n; i++)
			lastused_put(&w->lastused, job->ids[i], job->times[i]);
	}
	free(job->ids);
	free(job->times);
	job->ids = NULL;
	job->times = NULL;
	w->flush_inflight = 0;
	if (w->flush_again) {
		w->flush_again = 0;
		flush_cb(-1, 0, w);
	}
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tk_worker *w = arg;
	if (w->flush_inflight || w->lastused.n == 0)
		return;
	tk_dbjob *job = &w->flush_job;
	memset(job, 0, sizeof(*job));
	job->kind = TK_DBJOB_LAST_USED;
	job->done = flush_done;
	job->reply = w->mbox;
	job->arg = w;
	job->n = w->lastused.n;
	job->ids = malloc(job->n * sizeof(*job->ids));
	job->times = malloc(job->n * sizeof(*job->times));
	if (!job->ids || !job->times) {
		free(job->ids);
		free(job->times);
		return;
	}
	size_t k = 0;
	for (size_t i = 0; i < w->lastused.cap && k < job->n; i++) {
		if (!w->lastused.ids[i][0])
			continue;
		memcpy(job->ids[k], w->lastused.ids[i], sizeof(job->ids[k]));
		job->times[k++] = w->lastused.times[i];
	}
	if (tk_dbpool_submit(w->srv->db, job) != 0) {
		free(job->ids);
		free(job->times);
		return;   /* keep the marks for the next interval */
	}
	memset(w->lastused.ids, 0, w->lastused.cap * sizeof(*w->lastused.ids));
	w->lastused.n = 0;
	w->flush_inflight = 1;
}

static void purge_done(tk_dbjob *job)
{
	tk_worker *w = job->arg;
	w->purge_inflight = 0;
}

static void purge_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tk_worker *w = arg;
	if (w->purge_inflight)
		return;
	memset(&w->purge_job, 0, sizeof(w->purge_job));
	w->purge_job.kind = TK_DBJOB_PURGE;
	w->purge_job.done = purge_done;
	w->purge_job.reply = w->mbox;
	w->purge_job.arg = w;
	if (tk_dbpool_submit(w->srv->db, &w->purge_job) == 0)
		w->purge_inflight = 1;
}

/* ---- workers ---- */

static evutil_socket_t bind_reuseport(const char *addr, int port, char *err, size_t errlen)
{
	struct sockaddr_in6 sa6;
	struct sockaddr_in sa4;
	struct sockaddr *sa;
	socklen_t salen;
	int family;
	memset(&sa4, 0, sizeof(sa4));
	memset(&sa6, 0, sizeof(sa6));
	if (inet_pton(AF_INET, addr, &sa4.sin_addr) == 1) {
		sa4.sin_family = AF_INET;
		sa4.sin_port = htons((uint16_t)port);
		sa = (struct sockaddr *)&sa4;
		salen = sizeof(sa4);
		family = AF_INET;
	} else if (inet_pton(AF_INET6, addr, &sa6.sin6_addr) == 1) {
		sa6.sin6_family = AF_INET6;
		sa6.sin6_port = htons((uint16_t)port);
		sa = (struct sockaddr *)&sa6;
		salen = sizeof(sa6);
		family = AF_INET6;
	} else {
		snprintf(err, errlen, "listen_address: '%s' is not an IP address", addr);
		return -1;
	}
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    bind(fd, sa, salen) != 0 || listen(fd, 1024) != 0) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", addr, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void stop_check_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tk_worker *w = arg;
	/* A worker without requests still moves to new signing keys (SIGHUP), so
	 * the old set is freed within this timer's period. */
	tk_worker_keys_refresh(w);
	if (!atomic_load(&w->srv->stopping))
		return;
	int64_t now = tk_now_us();
	if (!w->drain_deadline_us) {
		/* Graceful stop: no new connections; those between requests close
		 * now; requests under way are answered (with Connection: close). */
		w->drain_deadline_us = now + w->srv->cfg->shutdown_timeout * 1000000;
		tk_connset_shutdown(w->conns);
		tk_connset_shutdown(w->admin_conns);
	}
	int open = tk_connset_count(w->conns) + tk_connset_count(w->admin_conns);
	if (open == 0 || now >= w->drain_deadline_us) {
		if (open) {
			char n[16], wi[16];
			snprintf(n, sizeof(n), "%d", open);
			snprintf(wi, sizeof(wi), "%d", w->index);
			tk_log(TK_LOG_WARNING, "server.drain_timeout", "worker", wi, "open_connections", n, NULL);
		}
		event_base_loopexit(w->base, NULL);
	}
}

static void *worker_main(void *arg)
{
	tk_worker *w = arg;
	event_base_dispatch(w->base);
	return NULL;
}

int tk_workers_start(tk_server *srv, char *err, size_t errlen)
{
	tk_config *cfg = srv->cfg;
	srv->workers = calloc((size_t)srv->nworkers, sizeof(tk_worker));
	if (!srv->workers) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < srv->nworkers; i++) {
		tk_worker *w = &srv->workers[i];
		w->srv = srv;
		w->index = i;
		struct event_config *ec = event_config_new();
		event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
		event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);   /* fewer epoll_ctl calls */
		w->base = event_base_new_with_config(ec);
		event_config_free(ec);
		w->http = w->base ? evhttp_new(w->base) : NULL;
		w->mbox = w->base ? tk_mailbox_new(w->base) : NULL;
		if (!w->http || !w->mbox) {
			snprintf(err, errlen, "cannot create worker %d event loop", i);
			return -1;
		}
		w->hasher = tk_hasher_new(srv->pepper, srv->pepper_len);
		if (!w->hasher) {
			snprintf(err, errlen, "cannot set up secret hashing");
			return -1;
		}
		char merr[256];
		w->keys = tk_keyset_ref(srv->keys);
		w->keys_gen = atomic_load(&srv->keys_gen);
		w->minter = tk_minter_new(w->keys->signer, merr, sizeof(merr));
		if (!w->minter) {
			snprintf(err, errlen, "signing: %s", merr);
			return -1;
		}
		w->fd = bind_reuseport(cfg->listen_address, cfg->listen_port, err, errlen);
		if (w->fd < 0)
			return -1;
		/* conn.c answers 431 past max_header_size (at least TK_TOKEN_HEADER_MIN);
		 * evhttp's own limit (a 400 page) only backs it up. */
		evhttp_set_max_headers_size(w->http, 2 * (size_t)TK_AT_LEAST(cfg->max_header_size, TK_TOKEN_HEADER_MIN));
		/* The admin API (when it shares this listener) takes bodies up to 64 KiB;
		 * the OAuth endpoints hold theirs to max_body_size (at least
		 * TK_TOKEN_BODY_MIN) themselves (413). */
		evhttp_set_max_body_size(w->http, cfg->admin_listen_port || cfg->max_body_size > 65536
		                                  ? TK_AT_LEAST(cfg->max_body_size, TK_TOKEN_BODY_MIN) : 65536);
		/* evhttp's own timeout (inactivity, restarted by each byte) only backs
		 * up the phase deadlines of conn.c, which never move: twice the largest. */
		int64_t t = cfg->idle_timeout;
		if (cfg->header_timeout > t)
			t = cfg->header_timeout;
		if (cfg->body_timeout > t)
			t = cfg->body_timeout;
		if (cfg->write_timeout > t)
			t = cfg->write_timeout;
		t *= 2;   /* never first: its expiry would be counted as nobody's */
		evhttp_set_timeout(w->http, (int)t);
		evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
		                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
		                           EVHTTP_REQ_PATCH);
		evhttp_set_default_content_type(w->http, "application/json");
		evhttp_set_gencb(w->http, on_request, w);
		/* Each worker's listener holds its share of max_connections. */
		int cap = (cfg->max_connections + srv->nworkers - 1) / srv->nworkers;
		struct evhttp_bound_socket *bound = evhttp_accept_socket_with_handle(w->http, w->fd);
		w->conns = bound ? tk_connset_new(w, w->http, bound, cap, (size_t)TK_AT_LEAST(cfg->max_header_size, TK_TOKEN_HEADER_MIN),
		                                  cfg->header_timeout, cfg->body_timeout, cfg->write_timeout,
		                                  cfg->idle_timeout) : NULL;
		if (!w->conns) {
			snprintf(err, errlen, "cannot accept on the listening socket");
			return -1;
		}
		if (i == 0 && cfg->admin_listen_port) {
			/* The admin API on its own listener, served by the first worker. */
			w->admin_fd = bind_reuseport(cfg->admin_listen_address, cfg->admin_listen_port, err, errlen);
			if (w->admin_fd < 0)
				return -1;
			w->admin_http = evhttp_new(w->base);
			evhttp_set_max_headers_size(w->admin_http, 2 * (size_t)TK_AT_LEAST(cfg->max_header_size, TK_TOKEN_HEADER_MIN));
			evhttp_set_max_body_size(w->admin_http, 2 * 65536);   /* the API answers 413 itself up to here */
			evhttp_set_timeout(w->admin_http, (int)t);
			evhttp_set_allowed_methods(w->admin_http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
			                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
			evhttp_set_gencb(w->admin_http, on_admin_request, w);
			bound = evhttp_accept_socket_with_handle(w->admin_http, w->admin_fd);
			w->admin_conns = bound ? tk_connset_new(w, w->admin_http, bound, cap,
			                                        (size_t)TK_AT_LEAST(cfg->max_header_size, TK_TOKEN_HEADER_MIN),
			                                        cfg->header_timeout,
			                                        cfg->body_timeout, cfg->write_timeout,
			                                        cfg->idle_timeout) : NULL;
			if (!w->admin_conns) {
				snprintf(err, errlen, "cannot accept on the admin listening socket");
				return -1;
			}
		}
		struct timeval iv = { cfg->last_used_flush_interval, 0 };
		w->flush_ev = event_new(w->base, -1, EV_PERSIST, flush_cb, w);
		event_add(w->flush_ev, &iv);
		/* The loop has no lock (EVENT_BASE_FLAG_NOLOCK): other threads never
		 * touch it; it watches the stop flag itself. */
		if (i == 0) {
			struct timeval pv = { 60, 0 };
			w->purge_ev = event_new(w->base, -1, EV_PERSIST, purge_cb, w);
			event_add(w->purge_ev, &pv);
		}
		struct timeval sv = { 0, 100000 };
		w->stop_ev = event_new(w->base, -1, EV_PERSIST, stop_check_cb, w);
		event_add(w->stop_ev, &sv);
	}
	for (int i = 0; i < srv->nworkers; i++)
		pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]);
	return 0;
}

void tk_workers_stop(tk_server *srv)
{
	if (!srv->workers)
		return;
	atomic_store(&srv->stopping, 1);
	for (int i = 0; i < srv->nworkers; i++) {
		tk_worker *w = &srv->workers[i];
		if (w->thread)
			pthread_join(w->thread, NULL);
	}
}

void tk_workers_flush(tk_server *srv)
{
	for (int i = 0; srv->workers && i < srv->nworkers; i++) {
		tk_worker *w = &srv->workers[i];
		if (w->mbox)
			tk_mailbox_drain(w->mbox);   /* a batch in flight may have come back */
		flush_cb(-1, 0, w);
	}
}

void tk_workers_free(tk_server *srv)
{
	if (!srv->workers)
		return;
	for (int i = 0; i < srv->nworkers; i++) {
		tk_worker *w = &srv->workers[i];
		/* Jobs finished after the loop stopped wait in the mailbox: run their
		 * callbacks directly (no timer fires, no connection is accepted; the
		 * pool is stopped, so any new submission fails at once). */
		if (w->mbox)
			while (tk_mailbox_drain(w->mbox) > 0)
				;
		if (w->flush_ev)
			event_free(w->flush_ev);
		if (w->stop_ev)
			event_free(w->stop_ev);
		if (w->purge_ev)
			event_free(w->purge_ev);
		/* evhttp_free closes the listeners, then every connection. */
		tk_connset_drain(w->conns);
		tk_connset_drain(w->admin_conns);
		if (w->http)
			evhttp_free(w->http);
		if (w->admin_http)
			evhttp_free(w->admin_http);
		tk_connset_free(w->conns);
		tk_connset_free(w->admin_conns);
		tk_mailbox_free(w->mbox);
		tk_minter_free(w->minter);
		tk_keyset_release(w->keys);
		tk_hasher_free(w->hasher);
		if (w->base)
			event_base_free(w->base);
		free(w->lastused.ids);
		free(w->lastused.times);
	}
	free(srv->workers);
	srv->workers = NULL;
}
