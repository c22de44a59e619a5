/*
 * conn.c - per-connection phase deadlines and the connection cap (conn.h).
 *
 * How a connection is followed through evhttp 2.1's public interface:
 *  - evhttp_set_bevcb: evhttp asks us for each accepted connection's
 *    bufferevent (before it attaches the socket). We make it, hold a
 *    reference, watch its input buffer (first byte of a request, end of the
 *    headers) and count the connection against the cap.
 *  - An event made active there runs once evhttp has finished setting the
 *    connection up (same loop pass, before any byte is read): the bufferevent's
 *    callback argument is then the evhttp_connection, which gets our close
 *    callback. Had evhttp already dropped the connection, its callbacks are
 *    cleared and our reference is the last one.
 *  - The close callback forgets the connection (evhttp calls it before the
 *    socket is closed, so the descriptor still names this connection).
 *  - Requests find their connection through a descriptor-indexed table.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "conn.h"
#include "log.h"
#include "server.h"

typedef enum { PH_HEADER, PH_BODY, PH_SERVER, PH_WRITE, PH_IDLE } conn_phase;

typedef struct tk_conn tk_conn;
struct tk_conn {
	tk_connset *set;
	struct bufferevent *bev;
	struct evhttp_connection *evcon;       /* NULL until adopted */
	struct evbuffer_cb_entry *watch;
	struct event *timer;
	evutil_socket_t fd;
	tk_conn *next_pending;
	tk_conn *prev, *next;                  /* every connection of the set */
	conn_phase phase;
	int started;                           /* a byte of the current request has come */
	/* Header scanner: line number in this request, bytes on the line (CR not
	 * counted), obsolete folding seen. */
	unsigned line;
	unsigned linelen;
	int folded;
};

struct tk_connset {
	tk_worker *w;
	struct evhttp *http;
	struct evconnlistener *lev;
	struct evhttp_bound_socket *bound;
	int cap, count, paused, draining;
	tk_conn *all;
	struct timeval tv[5];                  /* per phase; PH_SERVER unused */
	struct event *adopt_ev;
	tk_conn *pending;
};

static _Atomic(tk_conn *) *fdtab;
static size_t fdtab_len;

int tk_conn_table_init(size_t max_fds)
{
	if (max_fds > ((size_t)1 << 22))
		max_fds = (size_t)1 << 22;
	fdtab = calloc(max_fds, sizeof(*fdtab));
	fdtab_len = fdtab ? max_fds : 0;
	return fdtab ? 0 : -1;
}

void tk_conn_table_free(void)
{
	free(fdtab);
	fdtab = NULL;
	fdtab_len = 0;
}

static void fdtab_set(evutil_socket_t fd, tk_conn *c)
{
	if (fd >= 0 && (size_t)fd < fdtab_len)
		atomic_store_explicit(&fdtab[fd], c, memory_order_release);
}

static tk_conn *conn_of(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = req ? evhttp_request_get_connection(req) : NULL;
	if (!evcon)
		return NULL;
	evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	if (fd < 0 || (size_t)fd >= fdtab_len)
		return NULL;
	tk_conn *c = atomic_load_explicit(&fdtab[fd], memory_order_acquire);
	return c && c->evcon == evcon ? c : NULL;
}

static void set_phase(tk_conn *c, conn_phase ph)
{
	c->phase = ph;
	if (ph == PH_SERVER)
		evtimer_del(c->timer);
	else
		evtimer_add(c->timer, &c->set->tv[ph]);   /* from now; traffic never moves it */
	if (ph == PH_HEADER) {
		c->started = 0;
		c->line = 0;
		c->linelen = 0;
		c->folded = 0;
	}
}

/* Feed request bytes to the header scanner; returns 1 at the blank line that
 * ends the headers. A leading empty line (before the request line) is
 * skipped, as RFC 9112 section 2.2 allows. */
static int scan(tk_conn *c, const unsigned char *p, size_t n, size_t *used)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = p[i];
		if (ch == '\n') {
			if (c->linelen == 0 && c->line > 0) {
				*used = i + 1;
				return 1;
			}
			if (c->linelen > 0)
				c->line++;
			c->linelen = 0;
		} else if (ch != '\r') {
			if (c->linelen == 0 && c->line > 0 && (ch == ' ' || ch == '\t'))
				c->folded = 1;
			c->linelen++;
		}
	}
	*used = n;
	return 0;
}

/* Scan `buf` from byte `from` on, while in the header phase. */
static void scan_buffer(tk_conn *c, struct evbuffer *buf, size_t from)
{
	struct evbuffer_ptr pos;
	if (evbuffer_ptr_set(buf, &pos, from, EVBUFFER_PTR_SET) != 0)
		return;
	struct evbuffer_iovec v[8];
	while (c->phase == PH_HEADER) {
		int nv = evbuffer_peek(buf, -1, &pos, v, 8);
		if (nv <= 0)
			return;
		size_t total = 0;
		for (int i = 0; i < nv && i < 8; i++) {
			size_t used;
			if (scan(c, v[i].iov_base, v[i].iov_len, &used)) {
				set_phase(c, PH_BODY);
				return;
			}
			total += used;
		}
		if (nv <= 8 || evbuffer_ptr_set(buf, &pos, total, EVBUFFER_PTR_ADD) != 0)
			return;
	}
}

static void input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	tk_conn *c = arg;
	if (info->n_added == 0)
		return;
	if (c->phase == PH_IDLE)
		set_phase(c, PH_HEADER);            /* the first byte of the next request */
	if (c->phase == PH_HEADER) {
		c->started = 1;
		size_t len = evbuffer_get_length(buf);
		scan_buffer(c, buf, len >= info->n_added ? len - info->n_added : 0);
	}
}

static void release(tk_conn *c)
{
	tk_connset *cs = c->set;
	tk_worker *w = cs->w;
	fdtab_set(c->fd, NULL);
	if (c->watch)
		evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->watch);
	event_free(c->timer);
	if (c->prev)
		c->prev->next = c->next;
	else
		cs->all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	cs->count--;
	atomic_fetch_sub_explicit(&w->metrics.conns_open, 1, memory_order_relaxed);
	if (cs->paused && cs->count < cs->cap && cs->lev && !cs->draining) {
		cs->paused = 0;
		evconnlistener_enable(cs->lev);
	}
}

static void closed_cb(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	release(arg);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tk_conn *c = arg;
	if (!c->evcon || c->phase == PH_SERVER)
		return;
	static const char *const names[] = { "header", "body", "server", "write", "idle" };
	if (!(c->set->draining && c->phase == PH_IDLE))   /* a stop, not a timeout */
		tk_metric_add(&c->set->w->metrics.conn_timeouts[c->phase], 1);
	if (c->phase != PH_IDLE && tk_log_enabled(TK_LOG_DEBUG)) {
		char *addr = NULL;
		ev_uint16_t port = 0;
		evhttp_connection_get_peer(c->evcon, &addr, &port);
		tk_log(TK_LOG_DEBUG, "http.deadline", "phase", names[c->phase], "peer", addr ? addr : "", NULL);
	}
	/* As evhttp does on its own timeout: the connection and any request on it
	 * (never one handed to a handler: PH_SERVER) are freed; closed_cb runs. */
	evhttp_connection_free(c->evcon);
}

static void adopt_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tk_connset *cs = arg;
	tk_conn *c;
	while ((c = cs->pending) != NULL) {
		cs->pending = c->next_pending;
		bufferevent_event_cb ecb = NULL;
		void *cbarg = NULL;
		struct bufferevent *bev = c->bev;
		bufferevent_getcb(bev, NULL, NULL, &ecb, &cbarg);
		if (!ecb || !cbarg) {
			/* evhttp gave up on it already: ours is the last reference. */
			release(c);
			bufferevent_decref(bev);
			continue;
		}
		c->evcon = cbarg;
		c->fd = bufferevent_getfd(bev);
		fdtab_set(c->fd, c);
		evhttp_connection_set_closecb(c->evcon, closed_cb, c);
		bufferevent_decref(bev);
	}
}

static struct bufferevent *bev_cb(struct event_base *base, void *arg)
{
	tk_connset *cs = arg;
	/* What evhttp would make itself (no BEV_OPT_CLOSE_ON_FREE: evhttp closes
	 * the socket itself, also when it gives up on the connection before we
	 * adopt it - our reference must then not close that number again), plus
	 * our watch. */
	struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
	tk_conn *c = bev ? calloc(1, sizeof(*c)) : NULL;
	if (c)
		c->timer = evtimer_new(base, timer_cb, c);
	if (c && c->timer)
		c->watch = evbuffer_add_cb(bufferevent_get_input(bev), input_cb, c);
	if (!c || !c->timer || !c->watch) {
		/* Out of memory: evhttp then makes a bufferevent itself and serves the
		 * connection untracked (no deadlines, not counted). */
		if (c && c->timer)
			event_free(c->timer);
		free(c);
		if (bev)
			bufferevent_free(bev);
		return NULL;
	}
	c->set = cs;
	c->bev = bev;
	c->fd = -1;
	bufferevent_incref(bev);
	set_phase(c, PH_HEADER);
	c->next_pending = cs->pending;
	cs->pending = c;
	c->next = cs->all;
	if (cs->all)
		cs->all->prev = c;
	cs->all = c;
	event_active(cs->adopt_ev, EV_TIMEOUT, 1);
	cs->count++;
	tk_worker *w = cs->w;
	atomic_fetch_add_explicit(&w->metrics.conns_open, 1, memory_order_relaxed);
	tk_metric_add(&w->metrics.conns_accepted, 1);
	if (cs->count >= cs->cap && !cs->paused && cs->lev) {
		/* The listener's accept loop stops after this connection. */
		cs->paused = 1;
		evconnlistener_disable(cs->lev);
		tk_metric_add(&w->metrics.conn_cap_reached, 1);
	}
	return bev;
}

tk_connset *tk_connset_new(tk_worker *w, struct evhttp *http, struct evhttp_bound_socket *bound,
                           int cap, int64_t header_s, int64_t body_s, int64_t write_s,
                           int64_t idle_s)
{
	tk_connset *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return NULL;
	cs->w = w;
	cs->http = http;
	cs->bound = bound;
	cs->lev = evhttp_bound_socket_get_listener(bound);
	cs->cap = cap > 0 ? cap : 1;
	cs->tv[PH_HEADER].tv_sec = header_s;
	cs->tv[PH_BODY].tv_sec = body_s;
	cs->tv[PH_WRITE].tv_sec = write_s;
	cs->tv[PH_IDLE].tv_sec = idle_s;
	cs->adopt_ev = event_new(w->base, -1, 0, adopt_cb, cs);
	if (!cs->adopt_ev) {
		free(cs);
		return NULL;
	}
	evhttp_set_bevcb(http, bev_cb, cs);
	return cs;
}

void tk_connset_shutdown(tk_connset *cs)
{
	if (!cs || cs->draining)
		return;
	adopt_cb(-1, 0, cs);
	cs->draining = 1;
	/* Close the listening socket: with SO_REUSEPORT the kernel sends new
	 * connections to the other sockets on the port (a new instance). */
	if (cs->bound)
		evhttp_del_accept_socket(cs->http, cs->bound);
	cs->bound = NULL;
	cs->lev = NULL;
	/* Connections between requests close now; the others finish their
	 * request (the answer says Connection: close) within their deadlines. */
	tk_conn *c = cs->all, *next;
	for (; c; c = next) {
		next = c->next;
		if (c->evcon && (c->phase == PH_IDLE || (c->phase == PH_HEADER && !c->started)))
			evhttp_connection_free(c->evcon);   /* closed_cb unlinks c */
	}
}

int tk_connset_count(const tk_connset *cs)
{
	return cs ? cs->count : 0;
}

void tk_connset_drain(tk_connset *cs)
{
	if (!cs)
		return;
	adopt_cb(-1, 0, cs);
	cs->lev = NULL;   /* evhttp_free frees it before it closes the connections */
}

void tk_connset_free(tk_connset *cs)
{
	if (!cs)
		return;
	adopt_cb(-1, 0, cs);
	event_free(cs->adopt_ev);
	free(cs);
}

static void done_cb(struct evhttp_request *req, void *arg)
{
	(void)req;
	tk_conn *c = arg;
	/* Bytes of a pipelined request may be waiting already: they start its
	 * header deadline now. */
	struct evbuffer *in = bufferevent_get_input(c->bev);
	if (evbuffer_get_length(in) > 0) {
		set_phase(c, PH_HEADER);
		c->started = 1;
		scan_buffer(c, in, 0);
	} else {
		set_phase(c, PH_IDLE);
		if (c->set->draining) {
			/* Stopping, and this answer went out keep-alive (made before the
			 * stop): close it from the loop, not here - evhttp still uses the
			 * connection when this callback returns. */
			static const struct timeval now = { 0, 0 };
			evtimer_add(c->timer, &now);
		}
	}
}

int tk_conn_request_begins(struct evhttp_request *req)
{
	tk_conn *c = conn_of(req);
	if (!c)
		return 0;
	int folded = c->folded;
	set_phase(c, PH_SERVER);
	evhttp_request_set_on_complete_cb(req, done_cb, c);
	return folded;
}

void tk_conn_response_begins(struct evhttp_request *req)
{
	tk_conn *c = conn_of(req);
	if (c)
		set_phase(c, PH_WRITE);
}
