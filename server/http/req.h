/*
 * req.h - one request interface, two transports.
 *
 * The token path (oauth/token.c, oauth/auth.c, http/keyauth.c and reply.c's
 * helpers) reads its request and writes its answer through tk_req, so that
 * the same handler serves a request parsed by evhttp (`ev`) and one taken by
 * the fast lane (`fast`, fastlane.h: POST /oauth2/token read and answered by
 * conn.c without evhttp). Exactly one of the two is set; tk_req is passed by
 * value and stays valid until the request is answered (tk_req_send), never
 * after.
 *
 * Threading: the worker's thread only.
 */
#ifndef TOKEND_REQ_H
#define TOKEND_REQ_H

#include <stddef.h>

#include <event2/http.h>

typedef struct tk_fastreq tk_fastreq;

typedef struct tk_req {
	struct evhttp_request *ev;             /* evhttp's request, or NULL */
	tk_fastreq *fast;                      /* the fast lane's (fastlane.h), or NULL */
} tk_req;

static inline tk_req tk_req_ev(struct evhttp_request *ev)
{
	tk_req r = { ev, NULL };
	return r;
}

/* The first input header field `name` (any case), its value as evhttp
 * stores it (leading spaces and trailing whitespace removed), or NULL. */
const char *tk_req_header(tk_req r, const char *name);
/* Walk the input fields `name` in order, one pass in all: a cursor set to
 * TK_REQ_CURSOR_INIT, then each call returns the next value, NULL at the end. */
typedef struct tk_req_cursor {
	unsigned k;                            /* fast lane: the next field to look at */
	const struct evkeyval *kv;             /* evhttp: the next field, once started */
	int started;
} tk_req_cursor;
#define TK_REQ_CURSOR_INIT { 0, NULL, 0 }
const char *tk_req_header_next(tk_req r, const char *name, tk_req_cursor *cur);
/* The `i`-th (from 0) input field `name`, in order, or NULL. */
const char *tk_req_header_nth(tk_req r, const char *name, int i);
/* How many input fields `name` there are. */
int tk_req_header_count(tk_req r, const char *name);
/* The method (EVHTTP_REQ_*) and the request target as received. */
enum evhttp_cmd_type tk_req_method(tk_req r);
const char *tk_req_uri(tk_req r);
/* The body: its bytes (NULL when empty), *len its length. */
const char *tk_req_body(tk_req r, size_t *len);
/* The TCP peer's address as text ("" when unknown). */
void tk_req_peer(tk_req r, char *buf, size_t len);
/* Add an output header field (copied). 0, or -1 when it could not be kept. */
int tk_req_add_header(tk_req r, const char *name, const char *value);
/* The answer is about to be sent: the connection's write deadline starts. */
void tk_req_response_begins(tk_req r);
/* Send the answer: status line, the output fields, Date, Content-Length
 * (and Content-Type application/json when none was added), the body. The
 * request is gone afterwards. */
void tk_req_send(tk_req r, int status, const char *reason, const char *body, size_t len);

#endif
