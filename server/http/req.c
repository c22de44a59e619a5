/*
 * req.c - the request interface (req.h) over its two transports: evhttp's
 * request, and the fast lane's (fastlane.h, sent by conn.c).
 */
#include "req.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "conn.h"
#include "fastlane.h"

const char *tk_req_header(tk_req r, const char *name)
{
	return tk_req_header_nth(r, name, 0);
}

const char *tk_req_header_next(tk_req r, const char *name, tk_req_cursor *cur)
{
	if (r.fast) {
		while (cur->k < r.fast->nhdr) {
			const tk_fastfield *f = &r.fast->hdr[cur->k++];
			/* The first letters first (| 0x20: the lower case of a letter;
			 * another byte may pass, strcasecmp then decides): most fields
			 * are told apart without a call. */
			if ((f->name[0] | 0x20) == (name[0] | 0x20) && strcasecmp(f->name, name) == 0)
				return f->value;
		}
		return NULL;
	}
	const struct evkeyval *kv;
	if (!cur->started) {
		cur->started = 1;
		kv = evhttp_request_get_input_headers(r.ev)->tqh_first;
	} else {
		kv = cur->kv;
	}
	for (; kv; kv = kv->next.tqe_next) {
		if (strcasecmp(kv->key, name) == 0) {
			cur->kv = kv->next.tqe_next;
			return kv->value;
		}
	}
	cur->kv = NULL;
	return NULL;
}

const char *tk_req_header_nth(tk_req r, const char *name, int i)
{
	tk_req_cursor cur = TK_REQ_CURSOR_INIT;
	const char *v;
	while ((v = tk_req_header_next(r, name, &cur)) != NULL && i-- > 0)
		;
	return v;
}

/* One pass over the fields, however many there are (a head full of one
 * repeated field must not cost a pass per copy). */
int tk_req_header_count(tk_req r, const char *name)
{
	tk_req_cursor cur = TK_REQ_CURSOR_INIT;
	int n = 0;
	while (tk_req_header_next(r, name, &cur))
		n++;
	return n;
}

enum evhttp_cmd_type tk_req_method(tk_req r)
{
	return r.fast ? EVHTTP_REQ_POST : evhttp_request_get_command(r.ev);
}

const char *tk_req_uri(tk_req r)
{
	return r.fast ? r.fast->uri : evhttp_request_get_uri(r.ev);
}

const char *tk_req_body(tk_req r, size_t *len)
{
	if (r.fast) {
		*len = r.fast->body_len;
		return r.fast->body_len ? r.fast->in + r.fast->head_len : NULL;
	}
	struct evbuffer *body = evhttp_request_get_input_buffer(r.ev);
	*len = evbuffer_get_length(body);
	return *len ? (const char *)evbuffer_pullup(body, -1) : NULL;
}

void tk_req_peer(tk_req r, char *buf, size_t len)
{
	struct evhttp_connection *evcon = r.fast ? r.fast->evcon : evhttp_request_get_connection(r.ev);
	char *addr = NULL;
	ev_uint16_t port = 0;
	if (evcon)
		evhttp_connection_get_peer(evcon, &addr, &port);
	snprintf(buf, len, "%s", addr ? addr : "");
}

int tk_req_add_header(tk_req r, const char *name, const char *value)
{
	if (!r.fast)
		return evhttp_add_header(evhttp_request_get_output_headers(r.ev), name, value);
	tk_fastreq *fr = r.fast;
	size_t nl = strlen(name) + 1, vl = strlen(value) + 1;
	if (fr->nout == TK_FAST_OUT || nl + vl > sizeof(fr->outval) - fr->outval_len ||
	    strpbrk(value, "\r\n") || strpbrk(name, "\r\n: "))
		return -1;
	char *n = fr->outval + fr->outval_len;
	memcpy(n, name, nl);
	memcpy(n + nl, value, vl);
	fr->outval_len += nl + vl;
	fr->out[fr->nout].name = n;
	fr->out[fr->nout].value = n + nl;
	fr->nout++;
	return 0;
}

void tk_req_response_begins(tk_req r)
{
	if (r.fast)
		tk_conn_fast_response_begins(r.fast);
	else
		tk_conn_response_begins(r.ev);
}

void tk_req_send(tk_req r, int status, const char *reason, const char *body, size_t len)
{
	if (r.fast) {
		tk_conn_fast_send(r.fast, status, reason, body, len);
		return;
	}
	struct evbuffer *buf = evbuffer_new();
	if (buf && body && len)
		evbuffer_add(buf, body, len);
	evhttp_send_reply(r.ev, status, reason, buf);
	if (buf)
		evbuffer_free(buf);
}
