/*
 * fastlane.h - the fast lane's request: POST /oauth2/token read from a
 * connection's input and answered on its socket by conn.c, without evhttp.
 *
 * conn.c decides when a request takes the fast lane (conn.h) and owns the
 * transport; this module owns the request: the copy of its head and body,
 * the header fields parsed as evhttp would parse them, the output fields and
 * the answer built in one buffer (no printf, no allocation once the buffers
 * have grown to a connection's requests). One tk_fastreq per connection,
 * reused by each of its fast-lane requests; it outlives its connection when
 * the connection closes while a handler still holds the request (conn is
 * then NULL and the answer is dropped).
 *
 * Threading: the worker's thread only.
 */
#ifndef TOKEND_FASTLANE_H
#define TOKEND_FASTLANE_H

#include <stddef.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "req.h"

#define TK_FAST_HDRS 32        /* input fields at most (more: evhttp serves the request) */
#define TK_FAST_OUT 16         /* output fields at most */
#define TK_FAST_OUTVAL 2048    /* bytes of output names and values */

typedef struct tk_fastfield {
	const char *name, *value;
} tk_fastfield;

struct tk_fastreq {
	void *conn;                            /* conn.c's connection; NULL once it closed */
	struct evhttp_connection *evcon;       /* its evhttp connection (the peer), or NULL */
	/* The request: head and body copied from the input, fields NUL-terminated in place. */
	char *in;
	size_t in_cap, head_len, body_len;
	const char *uri;
	tk_fastfield hdr[TK_FAST_HDRS];
	unsigned nhdr;
	int ask_close;                         /* its first Connection field is "close" */
	/* The answer. */
	tk_fastfield out[TK_FAST_OUT];
	unsigned nout;
	size_t outval_len;
	char outval[TK_FAST_OUTVAL];
	char *resp;
	size_t resp_cap, resp_len, resp_off;   /* built; sent so far */
	int close_after;                       /* close once the answer is sent */
	int with_handler;                      /* with a handler, not answered yet */
	time_t date_t;                         /* the Date value's second, and the value */
	char date[32];
};

/*
 * Take the request at the start of `in` (`head_len` bytes of head as the
 * scanner measured it, then `body_len` of body, all in `in`) if the fast lane
 * understands it: copied into fr->in and parsed. Returns 0 (then the caller
 * drains those bytes), or -1 with `in` untouched and the request left to
 * evhttp: a field the fast lane does not handle (Expect), too many fields,
 * out of memory.
 */
int tk_fast_parse(tk_fastreq *fr, struct evbuffer *in, size_t head_len, size_t body_len);

/* Ready `fr` for its next request: forget the output fields. */
void tk_fast_reset(tk_fastreq *fr);

/* Wipe the body (it may hold client_secret) once the handler has read it,
 * and at the answer the whole request (Authorization). */
void tk_fast_wipe_body(tk_fastreq *fr);
void tk_fast_wipe(tk_fastreq *fr);

/*
 * Build the answer into fr->resp as evhttp 2.1 would write it for an
 * HTTP/1.1 request: status line, the output fields in order, Date,
 * Content-Length, Content-Type (application/json) when none was given, and
 * Connection: close at the end when the request asked for it (instead of any
 * Connection field added). Sets close_after. 0, or -1 out of memory.
 */
int tk_fast_build(tk_fastreq *fr, int status, const char *reason, const char *body, size_t len);

/* Free `fr` and its buffers (wiped). */
void tk_fast_free(tk_fastreq *fr);

#endif
