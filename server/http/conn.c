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
 *
 * The request scanner sees every byte of a request head as it is added to the
 * input buffer (our evbuffer callback runs before evhttp's read callback), so
 * a malformed head is refused before evhttp parses any of it: the scanner
 * drains the input, writes the 400 (or 431) itself on the socket, shuts the
 * sending side and closes the connection soon after (PH_REFUSED); evhttp,
 * still waiting for the rest of a head, never acts on those bytes. Bytes that
 * arrive while a request is being read, served or answered are scanned when
 * its answer has been sent (done_cb), before evhttp reads them; evhttp reads
 * exactly Content-Length bytes of body (no other framing gets past the
 * scanner), so the scanner and evhttp agree on where each request ends.
 *
 * A keep-alive connection that has had a fast-lane answer is read by this
 * module (own_read_cb: one recv into the same input buffer, so input_cb sees
 * the same bytes) until evhttp must read again ("who reads the socket").
 *
 * Connections from one address are counted in a table shared by the workers
 * (striped locks; a connection is counted once adopted, when its peer is
 * known). Idle keep-alive connections are listed oldest first, so that at
 * the cap the oldest is closed to admit a new connection.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <liburing.h>

#include <tokend/crypto.h>

#include "clock.h"
#include "conn.h"
#include "fastlane.h"
#include "headscan.h"
#include "log.h"
#include "server.h"

typedef enum {
	PH_HEADER,    /* reading a request head (deadline header_timeout) */
	PH_BODY,      /* reading its body (body_timeout) */
	PH_SERVER,    /* with a handler: no deadline here */
	PH_WRITE,     /* the answer is being sent (write_timeout) */
	PH_IDLE,      /* keep-alive, between requests (idle_timeout); on the idle list */
	PH_REFUSED    /* answered by the scanner (400/431); input discarded until the close */
} conn_phase;

#define REFUSED_LINGER_S 1   /* a refused connection: time for the client to read the answer */
#define ADDR_KEY_LEN 17      /* family tag + 16 address bytes */

typedef struct tk_conn tk_conn;
struct tk_conn {
	tk_connset *set;
	struct bufferevent *bev;
	struct evhttp_connection *evcon;       /* NULL until adopted */
	struct evbuffer_cb_entry *watch;
	struct event *timer;
	evutil_socket_t fd;
	tk_conn *next_pending;
	tk_conn *next_owed;                    /* the set's owed list, while owed */
	int owed;                              /* a fast-lane answer built, its send deferred */
	tk_conn *prev, *next;                  /* every connection of the set */
	tk_conn *idle_prev, *idle_next;        /* the idle list, while PH_IDLE */
	conn_phase phase;
	int started;                           /* a byte of the current request has come */
	int addr_counted;                      /* counted under addr in the address table */
	unsigned char addr[ADDR_KEY_LEN];
	tk_headscan hs;                        /* the request scanner (reset at each request) */
	/* The fast lane (see "The fast lane" below). */
	int fast_from0;                        /* the current head is whole in the input, evhttp
	                                          has read none of it */
	int fast_busy;                         /* a fast-lane request is not answered (or its
	                                          answer not sent) yet */
	int read_off;                          /* reading stopped meanwhile */
	int own_read;                          /* the socket is read by own_read_cb, not libevent */
	struct event *rev;                     /* own_read_cb's event (made with wev) */
	tk_fastreq *fr;                        /* NULL until the first fast-lane request */
	struct evbuffer *held;                 /* bytes read behind a pending fast-lane request */
	struct event *wev;                     /* the rest of a partly sent answer */
	struct event *resume_ev;               /* after a pending answer: the held bytes */
	int status;                            /* refused: 400, 413 or 431, and why */
	const char *why;
};

struct tk_connset {
	tk_worker *w;
	struct evhttp *http;
	struct evconnlistener *lev;
	struct evhttp_bound_socket *bound;
	int cap, count, paused, draining;
	size_t max_head;                       /* request head bytes at most (431 beyond) */
	size_t max_body;                       /* Content-Length at most, but for the admin API (413 beyond); 0: none */
	int fast;                              /* the fast lane serves this listener */
	int listener;                          /* its tk_listener_kind */
	tk_conn *all;
	tk_conn *idle_head, *idle_tail;        /* PH_IDLE connections, oldest first */
	struct timeval tv[5];                  /* per phase; PH_SERVER unused */
	struct event *adopt_ev;
	tk_conn *pending;
	/* Fast-lane answers built in this pass of the loop, sent together after
	 * the pass's other callbacks (flush_ev) or when `batch` are owed. */
	struct event *flush_ev;
	tk_conn *owed_head, *owed_tail;
	int nowed, batch;
	int loop_done;                         /* the worker's loop has stopped: no pass ends */
	/* A group's sends in one system call (send_uring): NULL, one send(2) each. */
	struct io_uring *ring;                 /* a group (`batch` at most) per call */
};

static _Atomic(tk_conn *) *fdtab;
static size_t fdtab_len;

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

/* ---- connections per address ---- */

#define ADDR_STRIPES 64

typedef struct addr_ent addr_ent;
struct addr_ent {
	addr_ent *next;
	unsigned char key[ADDR_KEY_LEN];
	int n;                                 /* connections open from it */
};

static int addr_cap;                           /* 0: no per-address cap */
static addr_ent **addr_buckets;                /* addr_nb chains; bucket i under stripe i % ADDR_STRIPES */
static size_t addr_nb;
static uint64_t addr_seed;
static pthread_mutex_t addr_mu[ADDR_STRIPES];

int tk_conn_table_init(size_t max_fds, int per_address, int max_connections)
{
	if (max_fds > ((size_t)1 << 22))
		max_fds = (size_t)1 << 22;
	fdtab = calloc(max_fds, sizeof(*fdtab));
	fdtab_len = fdtab ? max_fds : 0;
	if (!fdtab)
		return -1;
	addr_cap = per_address > 0 ? per_address : 0;
	if (!addr_cap)
		return 0;
	size_t nb = ADDR_STRIPES;
	while (nb < (size_t)max_connections && nb < ((size_t)1 << 20))
		nb <<= 1;
	addr_buckets = calloc(nb, sizeof(*addr_buckets));
	if (!addr_buckets) {
		tk_conn_table_free();
		return -1;
	}
	addr_nb = nb;
	/* The seed only spreads the chains; without it they are still correct. */
	if (getrandom(&addr_seed, sizeof(addr_seed), 0) != (ssize_t)sizeof(addr_seed))
		addr_seed = 0;
	for (int i = 0; i < ADDR_STRIPES; i++)
		pthread_mutex_init(&addr_mu[i], NULL);
	return 0;
}

void tk_conn_table_free(void)
{
	free(fdtab);
	fdtab = NULL;
	fdtab_len = 0;
	if (addr_buckets) {
		for (size_t i = 0; i < addr_nb; i++) {
			addr_ent *e = addr_buckets[i], *next;
			for (; e; e = next) {
				next = e->next;
				free(e);
			}
		}
		for (int i = 0; i < ADDR_STRIPES; i++)
			pthread_mutex_destroy(&addr_mu[i]);
	}
	free(addr_buckets);
	addr_buckets = NULL;
	addr_nb = 0;
}

static size_t addr_bucket(const unsigned char *key)
{
	uint64_t h = addr_seed ^ 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < ADDR_KEY_LEN; i++) {
		h ^= key[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (size_t)(h & (addr_nb - 1));
}

/* The peer of `fd` as a table key (an IPv4-mapped IPv6 address is its IPv4
 * address). Returns 0, or -1 when the socket has no IP peer. */
static int addr_key(evutil_socket_t fd, unsigned char key[ADDR_KEY_LEN])
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	memset(key, 0, ADDR_KEY_LEN);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((struct sockaddr_in *)&ss)->sin_addr, 4);
		return 0;
	}
	if (ss.ss_family == AF_INET6) {
		const unsigned char *a = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(a, mapped, 12) == 0) {
			key[0] = 4;
			memcpy(key + 1, a + 12, 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, a, 16);
		}
		return 0;
	}
	return -1;
}

/* Count `c` under its peer address. Returns 0 (counted, or no cap), 1 when
 * the address is at its cap, -1 when the peer is unknown or memory is short
 * (the connection is refused either way: nothing unknown gets past the cap). */
static int addr_acquire(tk_conn *c)
{
	if (!addr_cap)
		return 0;
	if (addr_key(c->fd, c->addr) != 0)
		return -1;
	size_t b = addr_bucket(c->addr);
	pthread_mutex_t *mu = &addr_mu[b % ADDR_STRIPES];
	int rc = 0;
	pthread_mutex_lock(mu);
	addr_ent *e = addr_buckets[b];
	while (e && memcmp(e->key, c->addr, ADDR_KEY_LEN) != 0)
		e = e->next;
	if (e && e->n >= addr_cap) {
		rc = 1;
	} else if (e) {
		e->n++;
	} else if ((e = calloc(1, sizeof(*e))) != NULL) {
		memcpy(e->key, c->addr, ADDR_KEY_LEN);
		e->n = 1;
		e->next = addr_buckets[b];
		addr_buckets[b] = e;
	} else {
		rc = -1;
	}
	pthread_mutex_unlock(mu);
	c->addr_counted = rc == 0;
	return rc;
}

static void addr_release(tk_conn *c)
{
	if (!c->addr_counted)
		return;
	c->addr_counted = 0;
	size_t b = addr_bucket(c->addr);
	pthread_mutex_t *mu = &addr_mu[b % ADDR_STRIPES];
	pthread_mutex_lock(mu);
	addr_ent **pe = &addr_buckets[b];
	while (*pe && memcmp((*pe)->key, c->addr, ADDR_KEY_LEN) != 0)
		pe = &(*pe)->next;
	if (*pe && --(*pe)->n == 0) {
		addr_ent *e = *pe;
		*pe = e->next;
		free(e);
	}
	pthread_mutex_unlock(mu);
}

/* ---- phases ---- */

/* Requests read behind a fast-lane answer and not yet fed back (fast_resume_cb). */
static int has_held(const tk_conn *c)
{
	return c->held && evbuffer_get_length(c->held) > 0;
}

/* Nothing of a next request anywhere: none held, none in the input buffer,
 * no byte in the socket (one recv with MSG_PEEK: only at the connection
 * cap, for the reaper). */
static int quiet(const tk_conn *c)
{
	unsigned char b;
	if (has_held(c) || c->read_off || evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		return 0;
	return c->fd < 0 || recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

static void idle_unlink(tk_conn *c)
{
	tk_connset *cs = c->set;
	if (c->idle_prev)
		c->idle_prev->idle_next = c->idle_next;
	else if (cs->idle_head == c)
		cs->idle_head = c->idle_next;
	if (c->idle_next)
		c->idle_next->idle_prev = c->idle_prev;
	else if (cs->idle_tail == c)
		cs->idle_tail = c->idle_prev;
	c->idle_prev = c->idle_next = NULL;
}

static void set_phase(tk_conn *c, conn_phase ph)
{
	tk_connset *cs = c->set;
	if (c->phase == PH_IDLE && ph != PH_IDLE) {
		idle_unlink(c);
		/* At the cap with no idle connection left to make room: stop accepting. */
		if (!cs->idle_head && cs->count >= cs->cap && !cs->paused && cs->lev) {
			cs->paused = 1;
			evconnlistener_disable(cs->lev);
		}
	} else if (ph == PH_IDLE && c->phase != PH_IDLE) {
		c->idle_prev = cs->idle_tail;
		if (cs->idle_tail)
			cs->idle_tail->idle_next = c;
		else
			cs->idle_head = c;
		cs->idle_tail = c;
		/* Paused at the cap: an idle connection can now make room. */
		if (cs->paused && cs->lev && !cs->draining) {
			cs->paused = 0;
			evconnlistener_enable(cs->lev);
		}
	}
	c->phase = ph;
	if (ph == PH_SERVER)
		evtimer_del(c->timer);
	else
		evtimer_add(c->timer, &cs->tv[ph]);   /* from now; traffic never moves it */
	if (ph == PH_HEADER) {
		c->started = 0;
		tk_headscan_reset(&c->hs, cs->max_head);
	}
}

/* ---- the request scanner (headscan.c) ---- */

/*
 * The head has ended: may its body be read? A Content-Length over the
 * connection set's max_body is refused (413) before evhttp buffers any of
 * it, unless the path is the admin API's (on this listener), which takes
 * larger bodies and answers 413 itself. A target too long to have been kept
 * whole is held to the limit unless a prefix route claims it.
 */
static int body_allowed(tk_conn *c)
{
	tk_connset *cs = c->set;
	if (!cs->max_body || tk_headscan_length(&c->hs) <= cs->max_body)
		return 1;
	size_t len;
	int truncated;
	const char *path = tk_headscan_path(&c->hs, &len, &truncated);
	const tk_router *router = cs->w->srv ? cs->w->srv->router : NULL;
	const tk_route *rt = router ? tk_router_match(router, path, len, 0) : NULL;
	if (rt && (rt->on & TK_ON_ADMIN_API) && (rt->prefix || !truncated))
		return 1;
	c->hs.status = 413;
	c->hs.why = "the request body is too large";
	return 0;
}

/* Answer a refused request ourselves and close: the input is discarded (evhttp
 * never sees it), the answer goes straight to the socket (nothing else is
 * being written while a head is read), the sending side is shut, and the
 * connection is closed when the client closes or after REFUSED_LINGER_S. */
static void refuse(tk_conn *c, struct evbuffer *in)
{
	tk_worker *w = c->set->w;
	c->phase = PH_REFUSED;
	evbuffer_drain(in, evbuffer_get_length(in));
	static const struct timeval linger = { REFUSED_LINGER_S, 0 };
	evtimer_add(c->timer, &linger);
	char body[256], msg[512];
	int blen = snprintf(body, sizeof(body), "{\"error\":\"invalid_request\",\"error_description\":\"%s\"}", c->why);
	int mlen = snprintf(msg, sizeof(msg),
	                    "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
	                    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
	                    "Connection: close\r\n\r\n%s",
	                    c->status, c->status == 431 ? "Request Header Fields Too Large" :
	                    c->status == 413 ? "Content Too Large" : "Bad Request",
	                    blen, body);
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	if (fd >= 0 && mlen > 0 && (size_t)mlen < sizeof(msg)) {
		ssize_t sent = send(fd, msg, (size_t)mlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)sent;   /* a client that does not read gets the close alone */
		shutdown(fd, SHUT_WR);
	}
	tk_metric_add(&w->metrics.requests_malformed, 1);
	tk_metrics_request(&w->metrics, EP_OTHER, c->status, 0);
	if (tk_log_enabled(TK_LOG_INFO)) {
		char *addr = NULL, st[8];
		ev_uint16_t port = 0;
		if (c->evcon)
			evhttp_connection_get_peer(c->evcon, &addr, &port);
		snprintf(st, sizeof(st), "%d", c->status);
		tk_log(TK_LOG_INFO, "http.refused", TK_LOG_NUM "status", st, "reason", c->why, "peer", addr ? addr : "", NULL);
	}
}

/*
 * The head has ended and may be read: is it the fast lane's? A POST with a
 * Content-Length to the exact path of a route with a `fast` handler on this
 * listener, HTTP/1.1, its head whole in the input before evhttp read any of
 * it, its body there too. Sets *rt.
 */
static int fast_eligible(tk_conn *c, struct evbuffer *buf, const tk_route **rt)
{
	tk_connset *cs = c->set;
	const tk_headscan *hs = &c->hs;
	if (!cs->fast || !c->fast_from0 || !c->evcon || !hs->cl_seen || hs->mlen != 4 ||
	    memcmp(hs->method, "POST", 4) != 0 || hs->vlen != 8 || memcmp(hs->version, "HTTP/1.1", 8) != 0)
		return 0;
	size_t len;
	int truncated;
	const char *path = tk_headscan_path(&c->hs, &len, &truncated);
	if (truncated || len != hs->tlen)         /* too long, or a query string: evhttp's */
		return 0;
	const tk_router *router = cs->w->srv ? cs->w->srv->router : NULL;
	*rt = router ? tk_router_match(router, path, len, cs->listener) : NULL;
	return *rt && (*rt)->fast && !(*rt)->prefix &&
	       evbuffer_get_length(buf) >= hs->head_bytes + hs->cl;
}

/* Scan `buf` from byte `from` on, while in the header phase. Returns 1 when
 * the head ended with a request for the fast lane (*rt its route; still
 * PH_HEADER, nothing consumed), else 0. */
static int scan_buffer(tk_conn *c, struct evbuffer *buf, size_t from, const tk_route **rt)
{
	struct evbuffer_ptr pos;
	if (evbuffer_ptr_set(buf, &pos, from, EVBUFFER_PTR_SET) != 0)
		return 0;
	struct evbuffer_iovec v[8];
	while (c->phase == PH_HEADER) {
		int nv = evbuffer_peek(buf, -1, &pos, v, 8);
		if (nv <= 0)
			return 0;
		size_t total = 0;
		for (int i = 0; i < nv && i < 8; i++) {
			size_t used;
			int r = tk_headscan_feed(&c->hs, v[i].iov_base, v[i].iov_len, &used);
			if (r == TK_HS_DONE && body_allowed(c)) {
				if (fast_eligible(c, buf, rt))
					return 1;
				set_phase(c, PH_BODY);
				return 0;
			}
			if (r != TK_HS_MORE) {
				c->status = c->hs.status;
				c->why = c->hs.why;
				refuse(c, buf);
				return 0;
			}
			total += used;
		}
		if (nv <= 8 || evbuffer_ptr_set(buf, &pos, total, EVBUFFER_PTR_ADD) != 0)
			return 0;
	}
	return 0;
}

/* ---- the fast lane ----
 *
 * POST /oauth2/token (a route with a `fast` handler) whose head and body are
 * in the input when its head ends, before evhttp has read a byte of it, is
 * taken out of the input here (evhttp never sees it) and served by the same
 * handler through the request interface (req.h, fastlane.h). The answer is
 * built in one buffer and sent with one send(); what the socket does not
 * take waits for an EV_WRITE event (write deadline). Anything else goes to
 * evhttp as before, with no byte consumed.
 *
 * Order: while a fast-lane answer is pending (a database lookup) or partly
 * sent, reading stops and bytes already read are held; once the answer is
 * sent they go back into the input (from the loop, not from the answering
 * stack), are scanned as a new request (the fast lane again, or evhttp,
 * which is then told to read them). A connection closed meanwhile leaves
 * its request with the handler, which answers into nothing (fastlane.h).
 */

/* Close from the loop (never under a callback that still holds the connection). */
static void close_soon(tk_conn *c)
{
	static const struct timeval now = { 0, 0 };
	if (c->phase == PH_IDLE)
		idle_unlink(c);
	c->phase = PH_REFUSED;                 /* input ignored until the close */
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	evtimer_add(c->timer, &now);
}

/* ---- who reads the socket ----
 *
 * libevent's bufferevent reads with an ioctl(FIONREAD) before each recv: one
 * system call of four per token. Once a connection has had a fast-lane
 * answer and is idle, its socket is read by own_read_cb instead (the
 * bufferevent's reading disabled): one recv into the same input buffer, so
 * that input_cb sees the bytes exactly as before. Reading goes back to the
 * bufferevent (own_read_end) for anything evhttp must read (a request not
 * for the fast lane, a head in pieces), at the end of the stream or on an
 * error (libevent then meets it and evhttp acts as it always did), and for a
 * refused connection. In a run of fast-lane requests on a keep-alive
 * connection the switch happens once.
 */

/* Bytes per recv, as libevent reads (EVBUFFER_MAX_READ). They are read into
 * the stack and copied into the input: the chain libevent allocates for a
 * token request (about 300 bytes and its 48-byte header) is then its
 * smallest, 1 KiB, which glibc's per-thread cache hands back request after
 * request; reserving 4 KiB in the input meant a trip through malloc's large
 * bins, consolidating its fast bins, for every request. */
#define OWN_READ_MAX 4096

/* Stop reading while a fast-lane answer is pending; read_resume resumes.
 * Both readers stop, whichever reads now: nothing is read (not even the end
 * of the stream) until the answer is sent. */
static void read_stop(tk_conn *c)
{
	if (c->read_off)
		return;
	c->read_off = 1;
	if (c->own_read)
		event_del(c->rev);
	bufferevent_disable(c->bev, EV_READ);
}

static void read_resume(tk_conn *c)
{
	if (!c->read_off)
		return;
	c->read_off = 0;
	if (c->own_read && event_add(c->rev, NULL) != 0)
		c->own_read = 0;                   /* no event: libevent's reading, as before */
	if (!c->own_read)
		bufferevent_enable(c->bev, EV_READ);
}

/* Idle after a fast-lane answer, nothing held: read the socket ourselves.
 * Only from the loop (fast_resume_cb), never under a read callback: what
 * follows the answered request in the same read may be evhttp's, and evhttp
 * then enables the bufferevent's reading again itself. */
static void own_read_begin(tk_conn *c)
{
	if (c->own_read || c->read_off || !c->rev || c->phase != PH_IDLE)
		return;
	if (has_held(c))
		return;
	bufferevent_disable(c->bev, EV_READ);
	if (event_add(c->rev, NULL) != 0) {
		bufferevent_enable(c->bev, EV_READ);
		return;
	}
	c->own_read = 1;
}

/* Back to the bufferevent (and so to evhttp). */
static void own_read_end(tk_conn *c)
{
	if (!c->own_read)
		return;
	c->own_read = 0;
	event_del(c->rev);
	if (!c->read_off)
		bufferevent_enable(c->bev, EV_READ);
}

static void own_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	tk_conn *c = arg;
	if (!c->own_read || c->read_off)
		return;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	unsigned char buf[OWN_READ_MAX];
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		/* The end of the stream, or an error: the bufferevent reads it again
		 * (the socket stays readable) and evhttp acts on it as before. */
		own_read_end(c);
		return;
	}
	/* The input's end is the socket's: frozen but while it reads. */
	evbuffer_unfreeze(in, 0);
	int added = evbuffer_add(in, buf, (size_t)n);   /* input_cb: the scanner, the fast lane */
	evbuffer_freeze(in, 0);
	tk_wipe(buf, (size_t)n);               /* a request: a client secret, likely */
	if (added != 0) {
		close_soon(c);                     /* bytes read and lost (no memory): the stream is broken */
		return;
	}
	/* Served (idle again), or an answer pending (reading stopped): still ours.
	 * Anything else is evhttp's to read, from the input first. */
	if (c->own_read && !c->fast_busy && c->phase != PH_IDLE) {
		own_read_end(c);
		if (c->phase != PH_REFUSED && evbuffer_get_length(in) > 0)
			bufferevent_trigger(c->bev, EV_READ, 0);
	}
}

static void fast_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tk_conn *c = arg;
	if (c->fast_busy || c->phase != PH_IDLE)
		return;
	read_resume(c);
	struct evbuffer *in = bufferevent_get_input(c->bev);
	if (has_held(c)) {
		/* The input's end is the socket's (frozen but while it reads). */
		evbuffer_unfreeze(in, 0);
		int moved = evbuffer_add_buffer(in, c->held);   /* input_cb scans them: a new request */
		evbuffer_freeze(in, 0);
		if (moved != 0) {
			close_soon(c);                 /* requests read and not passed on: no answer for them */
			return;
		}
	}
	if (!c->fast_busy && c->phase != PH_REFUSED && evbuffer_get_length(in) > 0) {
		own_read_end(c);
		bufferevent_trigger(c->bev, EV_READ, 0);   /* what is left is evhttp's */
	} else if (c->phase == PH_REFUSED) {
		own_read_end(c);
	} else {
		own_read_begin(c);                 /* only when idle, nothing pending */
	}
}

/* The answer has been sent: idle, or closed. */
static void fast_sent(tk_conn *c)
{
	tk_fastreq *fr = c->fr;
	tk_wipe(fr->resp, fr->resp_len);       /* it held a token */
	fr->resp_len = fr->resp_off = 0;
	c->fast_busy = 0;
	if (fr->close_after) {
		close_soon(c);
		return;
	}
	set_phase(c, PH_IDLE);
	if (c->set->draining) {
		close_soon(c);                     /* stopping (an answer built after the stop said Connection: close) */
		return;
	}
	/* Reading changes hands from the loop (fast_resume_cb), never here: this
	 * may run under the bufferevent's read callback. */
	if (c->read_off || has_held(c) || !c->own_read)
		event_active(c->resume_ev, EV_TIMEOUT, 1);
}

/* Send what is left of the answer; the rest waits for EV_WRITE. */
static void fast_write(tk_conn *c)
{
	tk_fastreq *fr = c->fr;
	while (fr->resp_off < fr->resp_len) {
		ssize_t n = send(c->fd, fr->resp + fr->resp_off, fr->resp_len - fr->resp_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			fr->resp_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && c->wev &&
		    event_add(c->wev, NULL) == 0) {   /* the write deadline is the phase's */
			read_stop(c);                  /* a client that does not read sends no more meanwhile */
			return;
		}
		close_soon(c);                     /* the peer is gone */
		return;
	}
	fast_sent(c);
}

/* ---- answers sent together ----
 *
 * On loopback (and on any host whose client sleeps in epoll_wait) a send to
 * a sleeping client pays for waking it: on another CPU an inter-processor
 * interrupt, in a virtual machine an exit to the host. Sent as each is
 * built, the answers of one pass of the loop (one epoll_wait's requests,
 * each a signature apart) wake the client once per answer. Sent together
 * after the pass, they find it awake after the first. An answer waits for
 * the rest of its pass (the other callbacks the same epoll_wait made ready),
 * and never for more than `batch` - 1 other fast-lane answers (then the owed
 * are sent at once): at half the peak rate a pass holds a request or two and
 * nothing waits.
 *
 * While an answer is owed its connection is not read: the flush event is
 * active, so it runs in this pass, and a socket is read at most once per pass
 * (level-triggered, one read event each). That holds because the worker's
 * base has one priority queue and no dispatch limit (worker.c): an
 * event_active'd event runs before the next epoll_wait. Anything read
 * meanwhile would be held behind the answer all the same (input_cb).
 */

/* Out of the owed list (a connection closing with its answer unsent). */
static void owed_unlink(tk_conn *c)
{
	tk_connset *cs = c->set;
	tk_conn *prev = NULL;
	if (!c->owed)
		return;
	for (tk_conn *o = cs->owed_head; o; prev = o, o = o->next_owed) {
		if (o != c)
			continue;
		if (prev)
			prev->next_owed = c->next_owed;
		else
			cs->owed_head = c->next_owed;
		if (cs->owed_tail == c)
			cs->owed_tail = prev;
		break;
	}
	c->owed = 0;
	c->next_owed = NULL;
	cs->nowed--;
}

/* ---- a group in one system call (send_uring) ----
 *
 * Sent one send(2) each, a group returns to user mode after every answer. A
 * client on the same machine (a load generator on loopback, a sidecar) woken
 * by one of them preempts the worker on that return, runs, and sleeps again
 * before the next: the group goes out one preemption at a time, and each
 * costs the worker a context switch. With send_uring (default on) a group of
 * two or more answers goes to the kernel in one io_uring_enter: the sends run
 * one after another inside that call, and the worker returns to user mode
 * once. Each is exactly send(2) with MSG_DONTWAIT: a full socket completes at
 * once with EAGAIN or a short count (from Linux 6.0 on, the only kernels the
 * ring is used on, io_uring never parks a MSG_DONTWAIT send to retry it
 * later), so every send of the group has completed when the
 * call returns and its buffer is ours again. What a send left unsent, or
 * failed (a full socket, a peer gone), fast_write then finishes, waits for
 * or closes, exactly as without the ring. Where no ring could be set up (a
 * seccomp profile such as Docker's default, kernel.io_uring_disabled, an old
 * kernel) answers go one send(2) each, as with send_uring = off.
 */

/* Give up the ring (after a failure it was not expected to have): one
 * send(2) each from now on. What io_uring_enter did not take goes with it,
 * never seen by the kernel. */
static void ring_drop(tk_connset *cs, const char *why)
{
	tk_log(TK_LOG_WARNING, "send.uring_off", "reason", why, NULL);
	io_uring_queue_exit(cs->ring);
	free(cs->ring);
	cs->ring = NULL;
}

/* A send the kernel may still be reading: its buffer is left to it for good
 * (never wiped, freed or reused, though it holds a token) and the connection
 * closes once fast_write finds nothing left to send. */
static void abandon(tk_conn *c)
{
	tk_fastreq *fr = c->fr;
	tk_log(TK_LOG_ERROR, "send.uring_stuck", "detail",
	       "a send did not complete: its buffer is left to the kernel, its connection closed", NULL);
	fr->resp = NULL;
	fr->resp_cap = 0;
	fr->resp_len = fr->resp_off = 0;
	fr->close_after = 1;
}

/* A completion of ring_send_group's: its answer's resp_off moves by what
 * the send took. 1 when it is one of the group's not seen before. */
static int ring_took(const struct io_uring_cqe *cqe, tk_conn *const *v, unsigned char *done, unsigned n)
{
	uint64_t i = io_uring_cqe_get_data64(cqe);
	if (i >= n || done[i])
		return 0;
	done[i] = 1;
	if (cqe->res > 0)
		v[i]->fr->resp_off += (size_t)cqe->res;
	return 1;
}

/* Send the owed answers (the first `batch` of them) in one call; each
 * answer's resp_off moves by what its send took. Failures are left for
 * fast_write to meet again on its own send. */
static void ring_send_group(tk_connset *cs)
{
	tk_conn *v[TK_SEND_BATCH_MAX];
	unsigned char done[TK_SEND_BATCH_MAX];
	unsigned n = 0, seen = 0, head;
	struct io_uring_cqe *cqe;

	for (tk_conn *c = cs->owed_head; c && n < (unsigned)cs->batch; c = c->next_owed) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(cs->ring);
		if (!sqe)
			break;
		tk_fastreq *fr = c->fr;
		io_uring_prep_send(sqe, c->fd, fr->resp + fr->resp_off, fr->resp_len - fr->resp_off,
		                   MSG_NOSIGNAL | MSG_DONTWAIT);
		io_uring_sqe_set_data64(sqe, n);
		done[n] = 0;
		v[n++] = c;
	}
	if (n == 0)
		return;
	int submitted = io_uring_submit(cs->ring);
	unsigned reaped = 0;
	io_uring_for_each_cqe(cs->ring, head, cqe) {
		reaped++;
		seen += (unsigned)ring_took(cqe, v, done, n);
	}
	io_uring_cq_advance(cs->ring, reaped);
	if (submitted >= 0 && (unsigned)submitted == n && seen == n) {
		uint64_t left = 0;
		for (unsigned i = 0; i < n; i++)
			left += v[i]->fr->resp_off < v[i]->fr->resp_len;
		tk_metric_add(&cs->w->metrics.send_uring_calls, 1);
		tk_metric_add(&cs->w->metrics.send_uring_short, left);
		return;
	}
	/* Not what MSG_DONTWAIT sends do on the kernels the ring is used on (6.0
	 * and later: tk_connset_fast): a send the kernel took is still in flight,
	 * reading its buffer. Wait for it, a second at most, submitting nothing
	 * (io_uring_wait_cqe_timeout with the kernel's EXT_ARG); one still unknown
	 * then is abandoned. The kernel takes SQEs in order: the first `submitted`. */
	unsigned took = submitted > 0 ? (unsigned)submitted : 0;
	int64_t until = tk_mono_ms() + 1000;
	while (seen < took && tk_mono_ms() < until) {
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 100 * 1000 * 1000 };
		int rc = io_uring_wait_cqe_timeout(cs->ring, &cqe, &ts);
		if (rc == -EINTR || rc == -ETIME)
			continue;
		if (rc != 0)
			break;
		seen += (unsigned)ring_took(cqe, v, done, n);
		io_uring_cqe_seen(cs->ring, cqe);
	}
	for (unsigned i = 0; i < took && i < n; i++)
		if (!done[i])
			abandon(v[i]);
	char why[96];
	if (submitted < 0)
		snprintf(why, sizeof(why), "io_uring_enter: %s", strerror(-submitted));
	else
		snprintf(why, sizeof(why), "%s", took < n ? "io_uring_enter took part of a group"
		                                          : "a send did not complete in its call");
	ring_drop(cs, why);
}

/* Send every owed answer, oldest first. fast_write never frees a
 * connection under it (close_soon closes from the loop). Counted: the
 * answers sent in full (not those partly sent or to a peer gone). */
static void flush_owed(tk_connset *cs)
{
	tk_conn *c;
	uint64_t sent = 0;
	if (cs->ring && cs->nowed > 1)
		ring_send_group(cs);               /* fast_write below: what is left, if anything */
	while ((c = cs->owed_head) != NULL) {
		cs->owed_head = c->next_owed;
		if (!cs->owed_head)
			cs->owed_tail = NULL;
		c->next_owed = NULL;
		c->owed = 0;
		cs->nowed--;
		fast_write(c);
		sent += !c->fast_busy;             /* fast_sent: the whole answer went */
	}
	if (sent) {
		tk_metric_add(&cs->w->metrics.send_batches, 1);
		tk_metric_add(&cs->w->metrics.send_batched, sent);
	}
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flush_owed(arg);
}

/* Send c's built answer now, or after this pass of the loop. */
static void fast_send_or_owe(tk_conn *c)
{
	tk_connset *cs = c->set;
	if (c->owed)
		return;                            /* on the list already (never expected) */
	if (!cs->flush_ev || cs->loop_done) {   /* flush_ev: made only when batch > 1 */
		fast_write(c);                     /* at once (after the loop: no pass will end) */
		return;
	}
	c->owed = 1;
	c->next_owed = NULL;
	if (cs->owed_tail)
		cs->owed_tail->next_owed = c;
	else
		cs->owed_head = c;
	cs->owed_tail = c;
	if (++cs->nowed >= cs->batch)
		flush_owed(cs);
	else if (cs->nowed == 1)
		event_active(cs->flush_ev, EV_TIMEOUT, 1);   /* after the callbacks already active */
}

static void fast_write_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tk_conn *c = arg;
	if (c->phase == PH_WRITE && c->fr)
		fast_write(c);
}

void tk_conn_fast_response_begins(tk_fastreq *fr)
{
	tk_conn *c = fr->conn;
	if (c)
		set_phase(c, PH_WRITE);
}

void tk_conn_fast_send(tk_fastreq *fr, int status, const char *reason, const char *body, size_t len)
{
	tk_conn *c = fr->conn;
	fr->with_handler = 0;
	tk_fast_wipe(fr);                      /* Authorization, and what is left of the body */
	if (!c) {
		tk_fast_free(fr);                  /* its connection closed meanwhile */
		return;
	}
	if (tk_fast_build(fr, status, reason, body, len) != 0) {
		close_soon(c);                     /* out of memory: no answer rather than half of one */
		return;
	}
	fast_send_or_owe(c);
}

/* Drain the first `n` bytes of `b`, wiped first: a request's bytes hold its
 * client secret, and libevent frees drained chunks as they are. */
static void wipe_drain(struct evbuffer *b, size_t n)
{
	struct evbuffer_iovec v[8];
	while (n > 0) {
		int nv = evbuffer_peek(b, (ev_ssize_t)n, NULL, v, 8);
		if (nv <= 0)
			break;
		size_t done = 0;
		for (int i = 0; i < nv && i < 8 && done < n; i++) {
			size_t k = v[i].iov_len < n - done ? v[i].iov_len : n - done;
			tk_wipe(v[i].iov_base, k);
			done += k;
		}
		evbuffer_drain(b, done);
		n -= done;
		if (done == 0)
			break;
	}
	if (n > 0)
		evbuffer_drain(b, n);
}

/* Take the request at the start of `in` (scanned: fast_eligible) and serve
 * it. Returns 1, or 0 when evhttp serves it after all (nothing consumed). */
static int fast_serve(tk_conn *c, struct evbuffer *in, const tk_route *rt)
{
	tk_connset *cs = c->set;
	size_t hl = c->hs.head_bytes, bl = (size_t)c->hs.cl;
	if (!c->fr) {
		tk_fastreq *fr = calloc(1, sizeof(*fr));
		struct event_base *base = bufferevent_get_base(c->bev);
		c->held = fr ? evbuffer_new() : NULL;
		c->wev = c->held ? event_new(base, c->fd, EV_WRITE, fast_write_cb, c) : NULL;
		c->resume_ev = c->wev ? event_new(base, -1, 0, fast_resume_cb, c) : NULL;
		/* Without its own reading event, the connection is read by libevent. */
		c->rev = c->resume_ev ? event_new(base, c->fd, EV_READ | EV_PERSIST, own_read_cb, c) : NULL;
		if (!c->resume_ev) {
			free(fr);
			if (c->wev)
				event_free(c->wev);
			if (c->held)
				evbuffer_free(c->held);
			c->wev = NULL;
			c->held = NULL;
			goto evhttp;
		}
		c->fr = fr;
	}
	if (tk_fast_parse(c->fr, in, hl, bl) != 0)
		goto evhttp;
	wipe_drain(in, hl + bl);
	tk_metric_add(&cs->w->metrics.requests_fast, 1);
	tk_fastreq *fr = c->fr;
	fr->conn = c;
	fr->evcon = c->evcon;
	fr->with_handler = 1;
	tk_fast_reset(fr);
	c->fast_busy = 1;
	set_phase(c, PH_SERVER);
	tk_req req = { NULL, fr };
	tk_worker_dispatch_fast(cs->w, req, rt);
	/* The handler has read the body (client_secret): wipe it, whatever it
	 * does next. fr is still ours: released connections are never freed
	 * under this call (closes are deferred). */
	if (fr->with_handler)
		tk_fast_wipe_body(fr);
	return 1;
evhttp:
	c->fast_from0 = 0;
	set_phase(c, PH_BODY);
	return 0;
}

/*
 * RFC 9112 section 2.2: a server ignores empty lines (CRLF, or a bare LF)
 * received before a request line; a client may send one after a POST body.
 * The scanner skips them, but evhttp 2.1 answers one 400 and closes: so they
 * are drained from the front of the input here, while no request line has
 * begun, before the fast lane or evhttp reads it. A CR alone at the end stays
 * (its LF may come next; evhttp waits for it too). They count toward no
 * request: a connection between requests stays idle (its idle deadline goes
 * on), one whose header deadline runs keeps it. Returns the bytes drained.
 */
static size_t drop_empty_lines(struct evbuffer *buf)
{
	unsigned char first;
	if (evbuffer_copyout(buf, &first, 1) != 1 || (first != '\r' && first != '\n'))
		return 0;                           /* the usual case: one byte looked at */
	size_t dropped = 0;
	for (;;) {
		unsigned char b[64];
		ev_ssize_t got = evbuffer_copyout(buf, b, sizeof(b));
		size_t n = 0;
		while (got > 0 && n < (size_t)got) {
			if (b[n] == '\n')
				n++;
			else if (b[n] == '\r' && n + 1 < (size_t)got && b[n + 1] == '\n')
				n += 2;
			else
				break;
		}
		if (n == 0 || evbuffer_drain(buf, n) != 0)
			return dropped;
		dropped += n;
	}
}

static void input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	tk_conn *c = arg;
	if (info->n_added == 0)
		return;
	if (c->phase == PH_REFUSED) {
		evbuffer_drain(buf, evbuffer_get_length(buf));   /* never a request */
		return;
	}
	if (c->fast_busy) {
		/* Behind a pending fast-lane answer: held until it is sent. */
		if (c->held)
			evbuffer_remove_buffer(buf, c->held, evbuffer_get_length(buf));
		return;
	}
	size_t len = evbuffer_get_length(buf);
	size_t from = len >= info->n_added ? len - info->n_added : 0;
	if ((c->phase == PH_IDLE || (c->phase == PH_HEADER && !tk_headscan_begun(&c->hs))) &&
	    drop_empty_lines(buf) > 0) {
		/* What is left was never scanned as a request, or only as empty
		 * lines, and evhttp has read none of it: the request starts anew
		 * (the fast lane may take it; a stop may close the connection). */
		if (c->phase == PH_HEADER) {
			tk_headscan_reset(&c->hs, c->set->max_head);
			c->started = 0;
		}
		from = 0;
		if (evbuffer_get_length(buf) == 0)
			return;
	}
	if (c->phase == PH_IDLE)
		set_phase(c, PH_HEADER);            /* the first byte of the next request */
	if (c->phase != PH_HEADER)
		return;
	if (!c->started)
		c->fast_from0 = from == 0;
	c->started = 1;
	const tk_route *rt = NULL;
	while (scan_buffer(c, buf, from, &rt) && fast_serve(c, buf, rt)) {
		if (c->fast_busy) {
			/* Answered later (or partly sent): what follows waits. An
			 * answer built and owed (sent at the end of this pass, before
			 * the socket can be read again) leaves reading on: stopping and
			 * resuming it cost an epoll_ctl per request; bytes that came
			 * meanwhile would be held all the same (above). */
			if (evbuffer_get_length(buf) > 0)
				evbuffer_remove_buffer(buf, c->held, evbuffer_get_length(buf));
			if (!c->owed)
				read_stop(c);
			return;
		}
		if (c->phase != PH_IDLE)
			return;                         /* closing */
		drop_empty_lines(buf);              /* a CRLF after the body, say */
		if (evbuffer_get_length(buf) == 0)
			return;                         /* nothing more */
		set_phase(c, PH_HEADER);            /* a pipelined request: still unread by evhttp */
		c->started = 1;
		c->fast_from0 = 1;
		from = 0;
	}
	if (c->phase == PH_HEADER)
		c->fast_from0 = 0;                  /* evhttp may read a part of this head now */
}

static void release(tk_conn *c)
{
	tk_connset *cs = c->set;
	tk_worker *w = cs->w;
	fdtab_set(c->fd, NULL);
	if (c->phase == PH_IDLE)
		idle_unlink(c);
	owed_unlink(c);                        /* (never expected: tk_connset_drain sends them first) */
	addr_release(c);
	if (c->fr) {
		if (c->fr->with_handler) {
			c->fr->conn = NULL;            /* the handler's until it answers (fastlane.h) */
			c->fr->evcon = NULL;
		} else {
			tk_fast_free(c->fr);
		}
	}
	if (c->wev)
		event_free(c->wev);
	if (c->resume_ev)
		event_free(c->resume_ev);
	if (c->rev)
		event_free(c->rev);                /* before evhttp closes the socket */
	if (c->held) {
		wipe_drain(c->held, evbuffer_get_length(c->held));   /* a next request's secret, maybe */
		evbuffer_free(c->held);
	}
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
	if (c->phase == PH_REFUSED) {
		evhttp_connection_free(c->evcon);   /* answered already; closed_cb runs */
		return;
	}
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
		int rc = addr_acquire(c);
		if (rc != 0) {
			/* Too many connections from this address (or its address is
			 * unknown): a 503 if the socket takes it, and the close. */
			static const char busy[] =
				"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
				"Content-Length: 96\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
				"{\"error\":\"temporarily_unavailable\",\"error_description\":\"too many connections from this address\"}";
			ssize_t sent = send(c->fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)sent;
			if (rc > 0)
				tk_metric_add(&cs->w->metrics.conns_refused_address, 1);
			evhttp_connection_free(c->evcon);   /* closed_cb releases c */
		}
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
	/* Only a connection with nothing of a next request is reaped. One just
	 * done with a fast-lane answer is on the idle list with requests behind
	 * it: read and held (fed back by fast_resume_cb later in this loop pass),
	 * or still in its socket, unread while the answer waited (reading
	 * stopped); and any idle client's next request may be in its socket,
	 * not yet read in this pass. */
	tk_conn *victim = cs->count > cs->cap ? cs->idle_head : NULL;
	while (victim && !quiet(victim))
		victim = victim->idle_next;
	if (victim) {
		/* Over the cap while keep-alive connections wait for a next request
		 * that may never come: the oldest idle one makes room. Freeing it
		 * here is safe: it is not the connection evhttp is setting up, and
		 * nothing of it is on the stack (its request, if any, was answered). */
		tk_metric_add(&w->metrics.conns_reaped_idle, 1);
		evhttp_connection_free(victim->evcon);   /* closed_cb: count-- */
	}
	if (cs->count >= cs->cap && !cs->idle_head && !cs->paused && cs->lev) {
		/* The listener's accept loop stops after this connection. */
		cs->paused = 1;
		evconnlistener_disable(cs->lev);
		tk_metric_add(&w->metrics.conn_cap_reached, 1);
	}
	return bev;
}

tk_connset *tk_connset_new(tk_worker *w, struct evhttp *http, struct evhttp_bound_socket *bound,
                           int cap, size_t max_head, size_t max_body, int64_t header_s,
                           int64_t body_s, int64_t write_s, int64_t idle_s)
{
	tk_connset *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return NULL;
	cs->w = w;
	cs->http = http;
	cs->bound = bound;
	cs->lev = evhttp_bound_socket_get_listener(bound);
	cs->cap = cap > 0 ? cap : 1;
	cs->max_head = max_head;
	cs->max_body = max_body;
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
		if (c->evcon && ((c->phase == PH_IDLE && !has_held(c)) || c->phase == PH_REFUSED ||
		                 (c->phase == PH_HEADER && !c->started)))
			evhttp_connection_free(c->evcon);   /* closed_cb unlinks c */
	}
}

int tk_connset_fast(tk_connset *cs, int listener, int send_batch, int send_uring, char *why,
                    size_t whylen)
{
	if (why && whylen)
		why[0] = '\0';
	if (send_batch > 1 && !cs->flush_ev) {
		cs->flush_ev = event_new(cs->w->base, -1, 0, flush_cb, cs);
		if (!cs->flush_ev)
			return -1;
	}
	cs->fast = 1;
	cs->listener = listener;
	cs->batch = send_batch > 1 ? send_batch : 1;
	if (send_uring && cs->batch > 1 && !cs->ring) {
		unsigned entries = 2;              /* a group, and a cancel (ring_send_group) */
		while (entries < (unsigned)cs->batch + 1)
			entries <<= 1;
		struct io_uring *ring = calloc(1, sizeof(*ring));
		int rc = ring ? io_uring_queue_init(entries, ring, IORING_SETUP_SUBMIT_ALL) : -ENOMEM;
		if (rc == 0) {
			/* Only where a MSG_DONTWAIT send never waits in the ring (it
			 * completes with EAGAIN instead): kernels from 6.0 on, known here
			 * by an opcode of theirs (IORING_OP_SEND_ZC, 6.0). An older
			 * kernel could park a send to a full socket and hold its buffer. */
			struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
			int recent = probe && io_uring_opcode_supported(probe, IORING_OP_SEND) &&
			             io_uring_opcode_supported(probe, IORING_OP_SEND_ZC);
			if (probe)
				io_uring_free_probe(probe);
			if (recent) {
				cs->ring = ring;
			} else {
				io_uring_queue_exit(ring);
				free(ring);
				if (why && whylen)
					snprintf(why, whylen, "io_uring: a kernel older than 6.0 (its sends may wait in the ring)");
			}
		} else {
			free(ring);
			if (why && whylen)
				snprintf(why, whylen, "io_uring_setup: %s", strerror(-rc));
		}
	}
	return 0;
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
	/* Answers owed since the loop's last pass (database jobs finished and
	 * drained from the mailbox after it stopped) go now; any later, at once. */
	cs->loop_done = 1;
	flush_owed(cs);
}

void tk_connset_free(tk_connset *cs)
{
	if (!cs)
		return;
	adopt_cb(-1, 0, cs);
	event_free(cs->adopt_ev);
	if (cs->flush_ev)
		event_free(cs->flush_ev);
	if (cs->ring) {
		io_uring_queue_exit(cs->ring);
		free(cs->ring);
	}
	free(cs);
}

static void done_cb(struct evhttp_request *req, void *arg)
{
	(void)req;
	tk_conn *c = arg;
	/* Bytes of a pipelined request may be waiting already: they start its
	 * header deadline now. */
	struct evbuffer *in = bufferevent_get_input(c->bev);
	drop_empty_lines(in);                   /* before evhttp reads the next request */
	if (evbuffer_get_length(in) > 0) {
		set_phase(c, PH_HEADER);
		c->started = 1;
		c->fast_from0 = 0;                  /* evhttp reads them next */
		const tk_route *rt = NULL;
		scan_buffer(c, in, 0, &rt);
	} else {
		set_phase(c, PH_IDLE);
		/* Bytes held behind a fast-lane answer, or reading stopped for one:
		 * never left behind an evhttp request (fast_resume_cb, from the loop). */
		if (c->resume_ev && (c->read_off || has_held(c)))
			event_active(c->resume_ev, EV_TIMEOUT, 1);
		if (c->set->draining) {
			/* Stopping, and this answer went out keep-alive (made before the
			 * stop): close it from the loop, not here - evhttp still uses the
			 * connection when this callback returns. */
			static const struct timeval now = { 0, 0 };
			evtimer_add(c->timer, &now);
		}
	}
}

void tk_conn_request_begins(struct evhttp_request *req)
{
	tk_conn *c = conn_of(req);
	if (!c)
		return;
	if (c->own_read) {
		/* Never expected (evhttp gets a request only once reading is handed
		 * back), but should it happen, only evhttp reads from now on; the
		 * bufferevent is left as evhttp has set it. */
		c->own_read = 0;
		event_del(c->rev);
	}
	set_phase(c, PH_SERVER);
	evhttp_request_set_on_complete_cb(req, done_cb, c);
}

void tk_conn_response_begins(struct evhttp_request *req)
{
	tk_conn *c = conn_of(req);
	if (c)
		set_phase(c, PH_WRITE);
}
