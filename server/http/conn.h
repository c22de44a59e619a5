/*
 * conn.h - per-connection deadlines and the connection cap, on top of
 * libevent 2.1's evhttp.
 *
 * evhttp 2.1 has one inactivity timeout per connection, restarted by every
 * byte read or written, so a client sending one byte every few seconds keeps
 * a connection forever. Here every connection gets a deadline per phase that
 * is set when the phase begins and never moved by traffic:
 *
 *   header   from the connection's accept, or the first byte of a later
 *            request, until the blank line that ends the request headers
 *   body     from the end of the headers until the request is complete
 *   write    from the response being handed over until its last byte is sent
 *   idle     from a response being sent until the first byte of the next
 *            request on the same connection
 *
 * While a request is with the server (database work) no deadline runs: the
 * server bounds that itself (db_timeout). A connection past its deadline is
 * closed without an answer, as evhttp does for its own timeout.
 *
 * The cap: each listener (one per worker, SO_REUSEPORT) stops accepting when
 * it holds its share of max_connections and starts again when one closes; the
 * kernel's backlog holds the connections that arrive meanwhile.
 *
 * The header scanner also notes obsolete line folding (a header line that
 * starts with a space or tab), which evhttp 2.1 would silently join: the
 * request is refused (400, connection closed) as RFC 9112 section 5.2 asks.
 *
 * Everything here runs on the worker's own loop thread.
 */
#ifndef TOKEND_CONN_H
#define TOKEND_CONN_H

#include <event2/http.h>
#include <event2/util.h>

typedef struct tk_worker tk_worker;
typedef struct tk_connset tk_connset;

/* Connection tracking for `http`, bound to `bound` (its listener), in
 * worker `w`; `cap` connections at most. Timeouts in seconds. */
tk_connset *tk_connset_new(tk_worker *w, struct evhttp *http, struct evhttp_bound_socket *bound,
                           int cap, int64_t header_s, int64_t body_s, int64_t write_s,
                           int64_t idle_s);
/* Graceful stop: close the listening socket and the connections between
 * requests; the rest finish their request. Idempotent. */
void tk_connset_shutdown(tk_connset *cs);
/* Connections still open. */
int tk_connset_count(const tk_connset *cs);
/* Before evhttp_free(http): settle connections accepted but not yet seen. */
void tk_connset_drain(tk_connset *cs);
/* After evhttp_free(http) (which closes, and so forgets, every connection). */
void tk_connset_free(tk_connset *cs);

/* Size the descriptor -> connection table; once, before any worker starts. */
int tk_conn_table_init(size_t max_fds);
void tk_conn_table_free(void);

/* The request has been read and is now with the server: stop its deadline.
 * Returns 1 when its headers used obsolete line folding (refuse it). */
int tk_conn_request_begins(struct evhttp_request *req);
/* The response is being handed to evhttp: the write deadline starts. */
void tk_conn_response_begins(struct evhttp_request *req);

#endif
