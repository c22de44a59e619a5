/*
 * fastlane.c - the fast lane's request and answer (fastlane.h).
 *
 * The head is parsed as evhttp 2.1 parses it (http.c evhttp_parse_headers_):
 * lines end at LF (a CR before it dropped; the scanner refused a lone CR,
 * folding and a name not followed by ':'); a value loses its leading spaces
 * and its trailing spaces and tabs. Repeated fields are kept in order, so a
 * lookup finds the first and a count sees them all, as with evhttp.
 */
#include "fastlane.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <tokend/crypto.h>

/* Make *buf (*cap bytes, from `least` on, doubled) hold `need` bytes; the old
 * one is wiped (a secret or a token was in it). 0, or -1 out of memory. */
static int grow(char **buf, size_t *cap, size_t need, size_t least)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : least;
	while (n < need)
		n *= 2;
	char *p = malloc(n);
	if (!p)
		return -1;
	if (*buf) {
		tk_wipe(*buf, *cap);
		free(*buf);
	}
	*buf = p;
	*cap = n;
	return 0;
}

int tk_fast_parse(tk_fastreq *fr, struct evbuffer *in, size_t head_len, size_t body_len)
{
	if (grow(&fr->in, &fr->in_cap, head_len + body_len + 1, 1024) != 0)
		return -1;
	if (evbuffer_copyout(in, fr->in, head_len + body_len) != (ev_ssize_t)(head_len + body_len))
		return -1;
	fr->in[head_len + body_len] = '\0';
	fr->head_len = head_len;
	fr->body_len = body_len;
	fr->nhdr = 0;
	fr->ask_close = 0;
	/* The request line: the scanner checked it (POST /oauth2/token HTTP/1.1). */
	char *p = fr->in, *end = fr->in + head_len;
	char *lf = memchr(p, '\n', (size_t)(end - p));
	if (!lf)
		goto refuse;
	char *sp = memchr(p, ' ', (size_t)(lf - p));
	if (!sp)
		goto refuse;
	fr->uri = sp + 1;
	sp = memchr(sp + 1, ' ', (size_t)(lf - sp - 1));
	if (!sp)
		goto refuse;
	*sp = '\0';
	p = lf + 1;
	int conn_seen = 0;
	while (p < end) {
		lf = memchr(p, '\n', (size_t)(end - p));
		if (!lf)
			goto refuse;
		char *le = lf > p && lf[-1] == '\r' ? lf - 1 : lf;
		*le = '\0';
		if (le == p)
			break;                           /* the blank line */
		char *colon = memchr(p, ':', (size_t)(le - p));
		if (!colon || fr->nhdr == TK_FAST_HDRS)
			goto refuse;
		*colon = '\0';
		char *v = colon + 1;
		while (*v == ' ')
			v++;
		char *ve = le;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			*--ve = '\0';
		/* 100-continue and anything else Expect asks for: evhttp's. */
		if (strcasecmp(p, "Expect") == 0)
			goto refuse;
		if (!conn_seen && strcasecmp(p, "Connection") == 0) {
			conn_seen = 1;
			fr->ask_close = strcasecmp(v, "close") == 0;
		}
		fr->hdr[fr->nhdr].name = p;
		fr->hdr[fr->nhdr].value = v;
		fr->nhdr++;
		p = lf + 1;
	}
	return 0;
refuse:
	tk_wipe(fr->in, head_len + body_len);
	fr->nhdr = 0;
	return -1;
}

void tk_fast_reset(tk_fastreq *fr)
{
	fr->nout = 0;
	fr->outval_len = 0;
	fr->close_after = 0;
	fr->resp_len = fr->resp_off = 0;
}

void tk_fast_wipe_body(tk_fastreq *fr)
{
	if (fr->in && fr->body_len)
		tk_wipe(fr->in + fr->head_len, fr->body_len);
	fr->body_len = 0;
}

void tk_fast_wipe(tk_fastreq *fr)
{
	if (fr->in)
		tk_wipe(fr->in, fr->head_len + fr->body_len);
	fr->head_len = fr->body_len = 0;
	fr->nhdr = 0;
}

static char *put(char *o, const char *s, size_t n)
{
	memcpy(o, s, n);
	return o + n;
}

static char *put_uint(char *o, unsigned long long v, int width)
{
	char d[24];
	int i = (int)sizeof(d);
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0 || (int)sizeof(d) - i < width);
	return put(o, d + i, sizeof(d) - (size_t)i);
}

/* "Sat, 05 Dec 2026 21:36:00 GMT", as evutil_date_rfc1123 writes it; once a second. */
static const char *date_now(tk_fastreq *fr)
{
	static const char days[] = "SunMonTueWedThuFriSat";
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	time_t t = time(NULL);
	if (t == fr->date_t && fr->date[0])
		return fr->date;
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		return NULL;
	char *o = fr->date;
	o = put(o, days + 3 * tm.tm_wday, 3);
	o = put(o, ", ", 2);
	o = put_uint(o, (unsigned)tm.tm_mday, 2);
	*o++ = ' ';
	o = put(o, months + 3 * tm.tm_mon, 3);
	*o++ = ' ';
	o = put_uint(o, (unsigned)(tm.tm_year + 1900), 4);
	*o++ = ' ';
	o = put_uint(o, (unsigned)tm.tm_hour, 2);
	*o++ = ':';
	o = put_uint(o, (unsigned)tm.tm_min, 2);
	*o++ = ':';
	o = put_uint(o, (unsigned)tm.tm_sec, 2);
	o = put(o, " GMT", 4);
	*o = '\0';
	fr->date_t = t;
	return fr->date;
}

static const char *out_find(const tk_fastreq *fr, const char *name)
{
	for (unsigned i = 0; i < fr->nout; i++)
		if (strcasecmp(fr->out[i].name, name) == 0)
			return fr->out[i].value;
	return NULL;
}

int tk_fast_build(tk_fastreq *fr, int status, const char *reason, const char *body, size_t len)
{
	/* evhttp: a body unless 1xx, 204 or 304 (never HEAD here: POST only). */
	int needs_body = !(status < 200 || status == 204 || status == 304);
	const char *date = out_find(fr, "Date") ? NULL : date_now(fr);
	const char *ctype = needs_body && !out_find(fr, "Content-Type") ? "application/json" : NULL;
	const char *conn_out = out_find(fr, "Connection");
	int has_cl = out_find(fr, "Content-Length") != NULL;
	size_t need = 64 + strlen(reason) + len + (date ? 40 : 0) + 40 + 40 + 24;
	for (unsigned i = 0; i < fr->nout; i++)
		need += strlen(fr->out[i].name) + strlen(fr->out[i].value) + 4;
	if (grow(&fr->resp, &fr->resp_cap, need, 2048) != 0)
		return -1;
	char *o = fr->resp;
	o = put(o, "HTTP/1.1 ", 9);
	o = put_uint(o, (unsigned)status, 3);
	*o++ = ' ';
	o = put(o, reason, strlen(reason));
	o = put(o, "\r\n", 2);
	for (unsigned i = 0; i < fr->nout; i++) {
		if (fr->ask_close && strcasecmp(fr->out[i].name, "Connection") == 0)
			continue;                        /* evhttp: replaced by the close below */
		o = put(o, fr->out[i].name, strlen(fr->out[i].name));
		o = put(o, ": ", 2);
		o = put(o, fr->out[i].value, strlen(fr->out[i].value));
		o = put(o, "\r\n", 2);
	}
	if (date) {
		o = put(o, "Date: ", 6);
		o = put(o, date, strlen(date));
		o = put(o, "\r\n", 2);
	}
	if (needs_body && !has_cl) {
		o = put(o, "Content-Length: ", 16);
		o = put_uint(o, len, 1);
		o = put(o, "\r\n", 2);
	}
	if (ctype) {
		o = put(o, "Content-Type: ", 14);
		o = put(o, ctype, strlen(ctype));
		o = put(o, "\r\n", 2);
	}
	if (fr->ask_close)
		o = put(o, "Connection: close\r\n", 19);
	o = put(o, "\r\n", 2);
	if (needs_body && len)
		o = put(o, body, len);
	fr->resp_len = (size_t)(o - fr->resp);
	fr->resp_off = 0;
	fr->close_after = fr->ask_close || (conn_out && strcasecmp(conn_out, "close") == 0);
	return 0;
}

void tk_fast_free(tk_fastreq *fr)
{
	if (!fr)
		return;
	if (fr->in) {
		tk_wipe(fr->in, fr->in_cap);
		free(fr->in);
	}
	if (fr->resp) {
		tk_wipe(fr->resp, fr->resp_cap);   /* a token was in it */
		free(fr->resp);
	}
	tk_wipe(fr->outval, sizeof(fr->outval));
	free(fr);
}
