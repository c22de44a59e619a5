/*
 * worker.c - the worker threads: one event_base and evhttp each on the
 * shared port (SO_REUSEPORT), requests dispatched through the router, the
 * last-used flush and revoked-token purge timers, the graceful stop.
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "clock.h"
#include "conn.h"
#include "portowner.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "thread.h"

/* ---- requests ---- */

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

int tk_request_id_ok(const char *v)
{
	static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:+/=-";
	size_t n = v ? strlen(v) : 0;
	return n >= 1 && n <= TK_REQID_MAX && strspn(v, ok) == n;
}

static int lowhex(const char *p, size_t n)
{
	int nonzero = 0;
	for (size_t i = 0; i < n; i++) {
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return -1;
		nonzero |= p[i] != '0';
	}
	return nonzero;
}

int tk_traceparent_parse(const char *v, char trace_id[33], char parent_id[17])
{
	trace_id[0] = parent_id[0] = '\0';
	size_t n = v ? strlen(v) : 0;
	/* vv-<32>-<16>-ff: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55 */
	if (n < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-')
		return -1;
	if (lowhex(v, 2) < 0 || memcmp(v, "ff", 2) == 0)
		return -1;
	if (memcmp(v, "00", 2) == 0 ? n != 55 : (n > 55 && v[55] != '-'))
		return -1;
	if (lowhex(v + 3, 32) != 1 || lowhex(v + 36, 16) != 1 || lowhex(v + 53, 2) < 0)
		return -1;
	memcpy(trace_id, v + 3, 32);
	trace_id[32] = '\0';
	memcpy(parent_id, v + 36, 16);
	parent_id[16] = '\0';
	return 0;
}

/* "<prefix>-<worker>-<seq>" into out, without printf: it runs
 * for every request. */
static void request_id(char *out, size_t cap, const char *prefix, int worker, uint64_t seq)
{
	char d[24];
	size_t o = 0, n = strlen(prefix), i;
	uint64_t v;

	if (cap < n + 2 * (1 + 20) + 1) {        /* two "-" and up to 20 digits each */
		out[0] = '\0';
		return;
	}
	memcpy(out, prefix, n);
	o = n;
	for (int k = 0; k < 2; k++) {
		v = k == 0 ? (uint64_t)(worker < 0 ? 0 : worker) : seq;
		i = sizeof(d);
		do {
			d[--i] = (char)('0' + v % 10);
			v /= 10;
		} while (v != 0);
		out[o++] = '-';
		memcpy(out + o, d + i, sizeof(d) - i);
		o += sizeof(d) - i;
	}
	out[o] = '\0';
}

/* The request's id and trace context from its headers: one each, or none. */
static void request_ids(tk_worker *w, tk_req req, tk_reqinfo *ri)
{
	const char *rid = tk_req_header(req, "X-Request-Id");
	if (rid && tk_req_header_count(req, "X-Request-Id") == 1 && tk_request_id_ok(rid))
		memcpy(ri->id, rid, strlen(rid) + 1);
	else   /* no system call: a per-process random prefix and a counter */
		request_id(ri->id, sizeof(ri->id), w->srv->reqid_prefix, w->index, ++w->reqseq);
	const char *tp = tk_req_header(req, "traceparent");
	if (tp && tk_req_header_count(req, "traceparent") == 1)
		tk_traceparent_parse(tp, ri->trace_id, ri->parent_id);
}

/* `on`: the listener the request came in on (tk_listener_kind). */
static void dispatch(tk_worker *w, struct evhttp_request *req, int on)
{
	tk_reqinfo ri = { .ep = on == TK_LISTENER_ADMIN ? EP_ADMIN : EP_OTHER, .start_us = tk_mono_us() };
	request_ids(w, tk_req_ev(req), &ri);
	tk_worker_keys_refresh(w);
	tk_conn_request_begins(req);
	if (refuse_bad_framing(w, req, &ri))
		return;
	const char *uri = evhttp_request_get_uri(req);
	if (!uri)
		uri = "";
	const tk_route *rt = tk_router_match(w->srv->router, uri, strcspn(uri, "?"), on);
	if (rt) {
		ri.ep = rt->ep;
		rt->fn(w, req, &ri);
		return;
	}
	static const char nf[] = "{\"error\":\"not_found\",\"error_description\":\"no such endpoint\"}";
	tk_http_reply(w, req, &ri, 404, "application/json", nf, sizeof(nf) - 1);
}

void tk_worker_dispatch_fast(tk_worker *w, tk_req req, const tk_route *rt)
{
	/* What dispatch does for an evhttp request; the scanner (conn.c) has
	 * refused the framing refuse_bad_framing looks for. */
	tk_reqinfo ri = { .ep = rt->ep, .start_us = tk_mono_us() };
	request_ids(w, req, &ri);
	tk_worker_keys_refresh(w);
	rt->fast(w, req, &ri);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	dispatch(arg, req, TK_LISTENER_MAIN);
}

/* The admin listener (admin_listen_port set): what the router puts there. */
static void on_admin_request(struct evhttp_request *req, void *arg)
{
	dispatch(arg, req, TK_LISTENER_ADMIN);
}

/* The ops listener (ops_listen_port set): /metrics, /healthz, /readyz. */
static void on_ops_request(struct evhttp_request *req, void *arg)
{
	dispatch(arg, req, TK_LISTENER_OPS);
}

/* ---- last-used batching ---- */

static void flush_cb(evutil_socket_t fd, short what, void *arg);

int64_t tk_lastused_pending(const tk_worker *w, const char *key_id)
{
	return tk_lastused_get(&w->lastused, key_id);
}

void tk_lastused_mark(tk_worker *w, const tk_apikey *k)
{
	const tk_config *cfg = w->srv->cfg;
	int64_t now = (int64_t)time(NULL);
	/* The key's last recorded use: the only field of a shared, otherwise
	 * immutable key that moves (atomic). The uintptr_t cast drops const on
	 * purpose. */
	_Atomic int64_t *known = (_Atomic int64_t *)(uintptr_t)&k->last_used_at;
	int64_t prev = atomic_load_explicit(known, memory_order_relaxed);
	/* Recorded less than last_used_precision ago: this use changes no time
	 * anyone is shown by more than that, and costs the database nothing. A
	 * key in steady use is then written once per precision, not once per
	 * flush interval on every instance. */
	if (prev > now - cfg->last_used_precision)
		return;
	/* One worker records it (the others see the new time and return). */
	if (prev != now && !atomic_compare_exchange_strong(known, &prev, now))
		return;
	if (tk_lastused_put_key(&w->lastused, k, now) != 0) {
		/* Not recorded (table full, out of memory): give the time back so
		 * that the next use tries again. */
		int64_t mine = now;
		atomic_compare_exchange_strong(known, &mine, prev);
		return;
	}
	tk_metric_add(&w->metrics.last_used_recorded, 1);
	int64_t stale = now - (TK_RECENT_USE_WINDOW - cfg->last_used_flush_interval - 60);
	if (prev >= stale)
		return;
	if (w->flush_inflight)
		w->flush_again = 1;
	else
		flush_cb(-1, 0, w);
}

/* The next batch's size from how the last statement (`sent` marks) went
 * (lastused.h): half of what it carried if it failed or was slow (not half of
 * a limit it never reached), twice the limit only after a full one was fast
 * (a handful of marks written quickly says nothing about the limit). */
static void flush_sized(tk_worker *w, int ok, int64_t took_us, size_t sent)
{
	int64_t budget = w->srv->cfg->db_timeout * 1000000;
	size_t was = w->flush_batch;
	if (!ok || took_us > budget / 4) {
		size_t half = (sent < was ? sent : was) / 2;
		w->flush_batch = half > TK_LASTUSED_BATCH_MIN ? half : TK_LASTUSED_BATCH_MIN;
	} else if (took_us < budget / 16 && sent >= was && was < TK_LASTUSED_BATCH) {
		w->flush_batch = was * 2 < TK_LASTUSED_BATCH ? was * 2 : TK_LASTUSED_BATCH;
	}
	if (w->flush_batch != was && tk_log_enabled(TK_LOG_DEBUG)) {
		char a[24], b[24], t[24];
		snprintf(a, sizeof(a), "%zu", was);
		snprintf(b, sizeof(b), "%zu", w->flush_batch);
		snprintf(t, sizeof(t), "%lld", (long long)(took_us / 1000));
		tk_log(TK_LOG_DEBUG, "last_used.batch", TK_LOG_NUM "from", a, TK_LOG_NUM "to", b,
		       TK_LOG_NUM "took_ms", t, "result", ok ? "ok" : "failed", NULL);
	}
}

static void flush_done(tk_dbjob *job)
{
	tk_worker *w = job->arg;
	flush_sized(w, job->status == TK_DBJOB_OK, tk_mono_us() - w->flush_sent_us, job->n);
	if (job->status == TK_DBJOB_OK)
		tk_metric_add(&w->metrics.last_used_written, job->n);
	else {
		/* Merge the batch back (newest time wins): nothing is lost while the
		 * database is away, and memory stays bounded by the number of keys. */
		for (size_t i = 0; i < job->n; i++)
			tk_lastused_put_back(&w->lastused, w->srv->cache, job->ids[i], job->times[i]);
	}
	free(job->ids);
	free(job->times);
	job->ids = NULL;
	job->times = NULL;
	w->flush_inflight = 0;
	/* A full batch may have left more behind: send the next one now. */
	if (w->flush_again || (job->status == TK_DBJOB_OK && tk_lastused_count(&w->lastused) >= w->flush_batch)) {
		w->flush_again = 0;
		flush_cb(-1, 0, w);
	}
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tk_worker *w = arg;
	size_t pending = tk_lastused_count(&w->lastused);
	if (w->flush_inflight || pending == 0)
		return;
	tk_dbjob *job = &w->flush_job;
	memset(job, 0, sizeof(*job));
	job->kind = TK_DBJOB_LAST_USED;
	job->done = flush_done;
	job->reply = w->mbox;
	job->arg = w;
	job->n = pending < w->flush_batch ? pending : w->flush_batch;
	job->ids = malloc(job->n * sizeof(*job->ids));
	job->times = malloc(job->n * sizeof(*job->times));
	if (!job->ids || !job->times) {
		free(job->ids);
		free(job->times);
		return;
	}
	job->n = tk_lastused_take(&w->lastused, job->ids, job->times, job->n);
	w->flush_sent_us = tk_mono_us();
	if (tk_dbpool_submit(w->srv->db, job) != 0) {
		/* Keep the marks for the next interval. */
		for (size_t i = 0; i < job->n; i++)
			tk_lastused_put_back(&w->lastused, w->srv->cache, job->ids[i], job->times[i]);
		free(job->ids);
		free(job->times);
		return;
	}
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

static evutil_socket_t bind_reuseport(const char *addr, int port, int backlog, char *err, size_t errlen)
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
	    bind(fd, sa, salen) != 0 || listen(fd, backlog) != 0) {
		int e = errno;
		char who[256];
		if (fd >= 0)
			close(fd);
		/* A holder without SO_REUSEPORT: name it when it can be found. */
		if (e == EADDRINUSE && tk_port_listener(addr, port, who, sizeof(who)) == 1)
			snprintf(err, errlen, "cannot listen on %s:%d: %s by %s", addr, port, strerror(e), who);
		else
			snprintf(err, errlen, "cannot listen on %s:%d: %s", addr, port, strerror(e));
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
	int64_t now = tk_mono_us();
	if (!w->drain_deadline_us) {
		/* Graceful stop: no new connections; those between requests close
		 * now; requests under way are answered (with Connection: close). */
		w->drain_deadline_us = now + w->srv->cfg->shutdown_timeout * 1000000;
		tk_connset_shutdown(w->conns);
		tk_connset_shutdown(w->admin_conns);
		tk_connset_shutdown(w->ops_conns);
	}
	int open = tk_connset_count(w->conns) + tk_connset_count(w->admin_conns) +
	           tk_connset_count(w->ops_conns);
	if (open == 0 || now >= w->drain_deadline_us) {
		if (open) {
			char n[16], wi[16];
			snprintf(n, sizeof(n), "%d", open);
			snprintf(wi, sizeof(wi), "%d", w->index);
			tk_log(TK_LOG_WARNING, "server.drain_timeout", TK_LOG_NUM "worker", wi,
			       TK_LOG_NUM "open_connections", n, NULL);
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

/* Where each worker runs (worker_cpus, cpus.h), planned before any socket
 * is bound: a refused list must not have taken connections. 0, or -1 with err. */
static int plan_cpus(const tk_server *srv, int *cpu, char *note, size_t nl, char *err, size_t errlen)
{
	char why[TK_CPUS_NOTE_MAX], unknown[96] = "";
	const char *no_auto = srv->port_shared ? "another process listens on listen_port too (a rolling "
	                                         "restart?): the two would pin their workers alike" : NULL;
	cpu_set_t allowed;
	int known = sched_getaffinity(0, sizeof(allowed), &allowed) == 0;

	if (!known) {
		snprintf(unknown, sizeof(unknown), "its CPU affinity cannot be read (%s)", strerror(errno));
		no_auto = unknown;
	}
	if (srv->nworkers > TK_WORKERS_MAX ||
	    tk_cpulist_plan(&srv->cfg->cpus, srv->nworkers, known ? &allowed : NULL, no_auto, cpu, note, nl,
	                    why, sizeof(why)) != 0) {
		snprintf(err, errlen, "worker_cpus: %s", srv->nworkers > TK_WORKERS_MAX ? "too many workers" : why);
		return -1;
	}
	return 0;
}

/* Pin a started worker to its CPU (cpu < 0: none). A placement is not a
 * condition of service: a failure is logged and added to the note. */
static void pin_worker(tk_worker *w, int cpu, char *note, size_t nl)
{
	cpu_set_t one;
	int rc;

	if (cpu < 0)
		return;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	rc = pthread_setaffinity_np(w->thread, sizeof(one), &one);
	if (rc != 0) {
		char wi[16], wc[16];
		size_t o = strlen(note);
		snprintf(wi, sizeof(wi), "%d", w->index);
		snprintf(wc, sizeof(wc), "%d", cpu);
		tk_log(TK_LOG_WARNING, "workers.cpu_failed", TK_LOG_NUM "worker", wi, TK_LOG_NUM "cpu", wc,
		       "error", strerror(rc), NULL);
		if (o < nl)
			snprintf(note + o, nl - o, "; worker %d not pinned: %s", w->index, strerror(rc));
	}
}

int tk_workers_start(tk_server *srv, char *err, size_t errlen)
{
	tk_config *cfg = srv->cfg;
	int cpu[TK_WORKERS_MAX];
	char note[TK_CPUS_NOTE_MAX + 128];
	if (plan_cpus(srv, cpu, note, sizeof(note), err, errlen) != 0)
		return -1;
	srv->workers = calloc((size_t)srv->nworkers, sizeof(tk_worker));
	if (!srv->workers) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	unsigned char rnd[8];
	if (tk_random_bytes(rnd, sizeof(rnd)) != 0) {
		snprintf(err, errlen, "the random number generator failed");
		return -1;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(srv->reqid_prefix + 2 * i, 3, "%02x", rnd[i]);
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
		w->flush_batch = TK_LASTUSED_BATCH;
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
		w->fd = bind_reuseport(cfg->listen_address, cfg->listen_port, cfg->listen_backlog, err, errlen);
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
		/* The OAuth and ops endpoints' body limit is a read limit: conn.c
		 * answers 413 from the Content-Length before evhttp buffers the body
		 * (the admin API's paths excepted: it has its own, up to 64 KiB). */
		w->conns = bound ? tk_connset_new(w, w->http, bound, cap, (size_t)TK_AT_LEAST(cfg->max_header_size, TK_TOKEN_HEADER_MIN),
		                                  (size_t)TK_AT_LEAST(cfg->max_body_size, TK_TOKEN_BODY_MIN),
		                                  cfg->header_timeout, cfg->body_timeout, cfg->write_timeout,
		                                  cfg->idle_timeout) : NULL;
		if (!w->conns) {
			snprintf(err, errlen, "cannot accept on the listening socket");
			return -1;
		}
		char why[160];
		if (cfg->http_fast_lane && tk_connset_fast(w->conns, TK_LISTENER_MAIN, cfg->send_batch,
		                                           cfg->send_uring, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "out of memory setting up the fast lane");
			return -1;
		}
		/* Said once when it works; by each worker whose ring could not be set up. */
		if (cfg->http_fast_lane && cfg->send_batch > 1 && cfg->send_uring && (why[0] || i == 0))
			tk_log(why[0] ? TK_LOG_WARNING : TK_LOG_INFO, "send.uring",
			       "state", why[0] ? "unavailable: each answer sent with send(2)" : "on",
			       "reason", why[0] ? why : NULL, NULL);
		if (i == 0 && cfg->admin_listen_port) {
			/* The admin API on its own listener, served by the first worker. */
			w->admin_fd = bind_reuseport(cfg->admin_listen_address, cfg->admin_listen_port,
			                             cfg->listen_backlog, err, errlen);
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
			                                        0, cfg->header_timeout,
			                                        cfg->body_timeout, cfg->write_timeout,
			                                        cfg->idle_timeout) : NULL;
			if (!w->admin_conns) {
				snprintf(err, errlen, "cannot accept on the admin listening socket");
				return -1;
			}
		}
		if (i == 0 && cfg->ops_listen_port) {
			/* /metrics, /healthz and /readyz on their own listener (then not
			 * on the main one), served by the first worker: GET and HEAD,
			 * no body. */
			w->ops_fd = bind_reuseport(cfg->ops_listen_address, cfg->ops_listen_port,
			                           cfg->listen_backlog, err, errlen);
			if (w->ops_fd < 0)
				return -1;
			w->ops_http = evhttp_new(w->base);
			if (!w->ops_http) {
				snprintf(err, errlen, "cannot create the ops listener");
				return -1;
			}
			evhttp_set_max_headers_size(w->ops_http, 2 * (size_t)TK_AT_LEAST(cfg->max_header_size, TK_TOKEN_HEADER_MIN));
			evhttp_set_max_body_size(w->ops_http, 1024);
			evhttp_set_timeout(w->ops_http, (int)t);
			evhttp_set_allowed_methods(w->ops_http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
			evhttp_set_default_content_type(w->ops_http, "application/json");
			evhttp_set_gencb(w->ops_http, on_ops_request, w);
			bound = evhttp_accept_socket_with_handle(w->ops_http, w->ops_fd);
			w->ops_conns = bound ? tk_connset_new(w, w->ops_http, bound, cap,
			                                      (size_t)TK_AT_LEAST(cfg->max_header_size, TK_TOKEN_HEADER_MIN),
			                                      (size_t)TK_AT_LEAST(cfg->max_body_size, TK_TOKEN_BODY_MIN),
			                                      cfg->header_timeout, cfg->body_timeout,
			                                      cfg->write_timeout, cfg->idle_timeout) : NULL;
			if (!w->ops_conns) {
				snprintf(err, errlen, "cannot accept on the ops listening socket");
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
	for (int i = 0; i < srv->nworkers; i++) {
		int rc = pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]);
		if (rc != 0) {
			/* A listening socket nobody serves would take connections and
			 * never answer: stop the workers that started, fail the start. */
			snprintf(err, errlen, "cannot start worker %d: %s", i, strerror(rc));
			tk_workers_stop(srv);
			return -1;
		}
		srv->workers[i].started = 1;
		tk_thread_name(srv->workers[i].thread, "tokend-w", i);
		pin_worker(&srv->workers[i], cpu[i], note, sizeof(note));
	}
	tk_log(TK_LOG_INFO, "workers.cpus", "cpus", note, NULL);
	return 0;
}

void tk_workers_stop(tk_server *srv)
{
	if (!srv->workers)
		return;
	atomic_store(&srv->stopping, 1);
	for (int i = 0; i < srv->nworkers; i++) {
		tk_worker *w = &srv->workers[i];
		if (w->started)
			pthread_join(w->thread, NULL);
		w->started = 0;
	}
}

void tk_workers_flush(tk_server *srv)
{
	for (int i = 0; srv->workers && i < srv->nworkers; i++) {
		tk_worker *w = &srv->workers[i];
		if (!w->mbox)
			continue;
		/* A batch in flight comes back within its deadline (the pool still
		 * runs): wait for it, so that the marks made since and any it hands
		 * back (merged on failure) go out in the last batch. */
		int64_t give_up = tk_mono_us() + (w->srv->cfg->db_timeout + 1) * 1000000;
		tk_mailbox_drain(w->mbox);
		for (;;) {
			while (w->flush_inflight && tk_mono_us() < give_up) {
				usleep(5000);
				tk_mailbox_drain(w->mbox);
			}
			w->flush_again = 0;
			if (w->flush_inflight || tk_lastused_count(&w->lastused) == 0)
				break;
			/* Batch after batch (flush_batch each); the last one is
			 * left in flight, as the pool finishes last-used jobs on stop. */
			flush_cb(-1, 0, w);
			if (!w->flush_inflight || tk_lastused_count(&w->lastused) == 0)
				break;
		}
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
		tk_connset_drain(w->ops_conns);
		if (w->http)
			evhttp_free(w->http);
		if (w->admin_http)
			evhttp_free(w->admin_http);
		if (w->ops_http)
			evhttp_free(w->ops_http);
		tk_connset_free(w->conns);
		tk_connset_free(w->admin_conns);
		tk_connset_free(w->ops_conns);
		tk_mailbox_free(w->mbox);
		tk_minter_free(w->minter);
		tk_keyset_release(w->keys);
		tk_hasher_free(w->hasher);
		if (w->base)
			event_base_free(w->base);
		tk_lastused_free(&w->lastused);
		free(w->spare_req);
		w->spare_req = NULL;
	}
	free(srv->workers);
	srv->workers = NULL;
}
