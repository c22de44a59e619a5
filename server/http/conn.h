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
 * The cap: each listener (one per worker, SO_REUSEPORT) holds its share of
 * max_connections. Over its share, the oldest idle keep-alive connection (one
 * between requests) is closed to admit the new one; with none idle, the
 * listener stops accepting and starts again when one closes or goes idle; the
 * kernel's backlog holds the connections that arrive meanwhile.
 *
 * The per-address cap (max_connections_per_address) counts the connections
 * of every worker and listener by peer address (IPv4, or IPv6; an IPv4-mapped
 * IPv6 address is its IPv4 address); one over it gets a 503 and is closed.
 *
 * The request scanner reads each request head as its bytes arrive, before
 * evhttp parses them, and refuses (400, or 431 past max_header_size; answered
 * with Connection: close and closed, the rest of the input never read as a
 * request) whatever evhttp 2.1 would read differently from a front end:
 *   - a request line other than token SP visible-ASCII SP HTTP/1.1|HTTP/1.0;
 *   - a field name that is not a token or is not directly followed by ':'
 *     (`Content-Length : 5`), a field line without ':', obsolete folding
 *     (a line starting with SP or HTAB: RFC 9112 section 5.2);
 *   - a control byte other than HTAB in a value (NUL included), a CR not
 *     followed by LF;
 *   - Transfer-Encoding (no endpoint takes a chunked body), more than one
 *     Content-Length, a Content-Length other than 1*DIGIT (`+3`, `3, 3`);
 *   - a body (Content-Length > 0) on GET, HEAD, DELETE, OPTIONS or TRACE
 *     (evhttp never reads a HEAD or TRACE body, so it would run as the next
 *     request; none of our endpoints takes one for those methods).
 * Empty lines before a request line (RFC 9112 section 2.2: a CRLF after a
 * POST body, say) are ignored: drained before evhttp, which would answer
 * them 400, reads them; they start no request and move no deadline (a CR
 * whose LF has not come yet starts the header phase, as any first byte does).
 * It answers 413 (and closes) a Content-Length over the set's max_body,
 * before evhttp buffers a byte of the body, unless the path is the admin
 * API's (its limit is its own). The scanner itself is headscan.c.
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
 * worker `w`; `cap` connections at most; request heads (request line and
 * headers, line ends included) of `max_head` bytes at most; bodies of
 * `max_body` bytes at most but on the admin API's paths (0: no limit here).
 * Timeouts in seconds. */
tk_connset *tk_connset_new(tk_worker *w, struct evhttp *http, struct evhttp_bound_socket *bound,
                           int cap, size_t max_head, size_t max_body, int64_t header_s,
                           int64_t body_s, int64_t write_s, int64_t idle_s);
/* Graceful stop: close the listening socket and the connections between
 * requests; the rest finish their request. Idempotent. */
void tk_connset_shutdown(tk_connset *cs);
/* Serve the fast lane on this set's connections, which arrive on listener
 * `listener` (tk_listener_kind): a POST to the exact path of a route with a
 * `fast` handler (router.h), HTTP/1.1, with a Content-Length, its head and
 * body whole in the input when the head ends (no Expect), is read and
 * answered here without evhttp (conn.c "The fast lane"); every other request
 * is evhttp's as before. Answers built in one pass of the worker's loop are
 * sent together after it, `send_batch` at most (conn.c "Answers sent
 * together"); 1 sends each as soon as it is built. With `send_uring`, a
 * group of two or more goes in one io_uring_enter (conn.c "A group in one
 * system call"); when no ring can be set up, `why` (if given) says why and
 * each answer is sent with send(2). 0 when set up (with or without a ring);
 * -1 out of memory. */
int tk_connset_fast(tk_connset *cs, int listener, int send_batch, int send_uring, char *why,
                    size_t whylen);
/* Connections still open. */
int tk_connset_count(const tk_connset *cs);
/* Before evhttp_free(http), once the loop has stopped: settle connections
 * accepted but not yet seen; send the answers owed (from database jobs
 * drained after the loop stopped), and any later at once. */
void tk_connset_drain(tk_connset *cs);
/* After evhttp_free(http) (which closes, and so forgets, every connection). */
void tk_connset_free(tk_connset *cs);

/* Size the descriptor -> connection table and the per-address table
 * (`per_address` connections from one address at most, 0: no cap;
 * `max_connections` sizes it); once, before any worker starts. 0, or -1 when
 * out of memory. */
int tk_conn_table_init(size_t max_fds, int per_address, int max_connections);
/* After the workers are freed. */
void tk_conn_table_free(void);

/* The request has been read and is now with the server: stop its deadline. */
void tk_conn_request_begins(struct evhttp_request *req);
/* The response is being handed to evhttp: the write deadline starts. */
void tk_conn_response_begins(struct evhttp_request *req);

/* The fast lane's transport (req.c): the answer's write deadline starts;
 * send the answer (fastlane.h tk_fast_build) and go on with the connection. */
struct tk_fastreq;
void tk_conn_fast_response_begins(struct tk_fastreq *fr);
void tk_conn_fast_send(struct tk_fastreq *fr, int status, const char *reason, const char *body,
                       size_t len);

#endif
