/*
 * headscan.c - the request-head scanner (headscan.h).
 */
#include "headscan.h"

#include <string.h>

/* Where the scanner is in a request head. */
typedef enum {
	SC_START,     /* before the request line (empty lines are skipped) */
	SC_METHOD, SC_TARGET, SC_VERSION,
	SC_FIELD,     /* at the start of a field line, or of the blank line */
	SC_NAME, SC_VALUE
} scan_state;

/* A field whose value the scanner reads. */
enum { F_OTHER, F_LENGTH };

void tk_headscan_reset(tk_headscan *s, size_t max_head)
{
	memset(s, 0, sizeof(*s));
	s->max_head = max_head;
	s->st = SC_START;
	s->field = F_OTHER;
}

int tk_headscan_begun(const tk_headscan *s)
{
	return s->st != SC_START;
}

/* RFC 9110 section 5.6.2: tchar. */
static int is_tchar(unsigned char ch)
{
	if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
		return 1;
	return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int scan_fail(tk_headscan *s, int status, const char *why)
{
	s->status = status;
	s->why = why;
	return TK_HS_REFUSE;
}

/* Methods whose requests carry no body here (RFC 9110 section 9.3: no
 * defined meaning; evhttp 2.1 never reads one for HEAD or TRACE, so its bytes
 * would be read as the next request). The admin API's DELETE takes none. */
static int bodiless_method(const tk_headscan *s)
{
	static const char *const m[] = { "GET", "HEAD", "DELETE", "OPTIONS", "TRACE" };
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (s->mlen == strlen(m[i]) && memcmp(s->method, m[i], s->mlen) == 0)
			return 1;
	return 0;
}

/* A line of the head has ended (LF, after an optional CR). */
static int scan_eol(tk_headscan *s)
{
	switch ((scan_state)s->st) {
	case SC_START:
		return TK_HS_MORE;   /* an empty line before the request line: RFC 9112 section 2.2 */
	case SC_METHOD:
	case SC_TARGET:
		return scan_fail(s, 400, "the request line must be: method, space, target, space, HTTP version");
	case SC_VERSION:
		if (s->vlen != 8 || (memcmp(s->version, "HTTP/1.1", 8) != 0 && memcmp(s->version, "HTTP/1.0", 8) != 0))
			return scan_fail(s, 400, "the HTTP version must be HTTP/1.1 or HTTP/1.0");
		s->st = SC_FIELD;
		return TK_HS_MORE;
	case SC_NAME:
		return scan_fail(s, 400, "a header line must be a field name, a colon and a value");
	case SC_VALUE:
		if (s->field == F_LENGTH && s->cl_digits == 0)
			return scan_fail(s, 400, "Content-Length must be a decimal number of bytes");
		s->st = SC_FIELD;
		return TK_HS_MORE;
	case SC_FIELD:
		if (s->cl > 0 && bodiless_method(s))
			return scan_fail(s, 400, "a request with this method must not have a body");
		return TK_HS_DONE;
	}
	return scan_fail(s, 400, "malformed request");
}

/* A byte of a field name, or the colon after it. */
static int scan_name(tk_headscan *s, unsigned char ch)
{
	if (is_tchar(ch)) {
		if (s->nlen < sizeof(s->name))
			s->name[s->nlen] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
		s->nlen++;
		return TK_HS_MORE;
	}
	if (ch != ':' || s->nlen == 0)
		return scan_fail(s, 400, "a header field name must be a token, directly followed by a colon");
	s->st = SC_VALUE;
	s->field = F_OTHER;
	if (s->nlen == 17 && memcmp(s->name, "transfer-encoding", 17) == 0)
		return scan_fail(s, 400, "send the body with a single Content-Length, not Transfer-Encoding");
	if (s->nlen == 14 && memcmp(s->name, "content-length", 14) == 0) {
		if (s->cl_seen)
			return scan_fail(s, 400, "send the body with a single Content-Length");
		s->cl_seen = 1;
		s->field = F_LENGTH;
	}
	return TK_HS_MORE;
}

/* One byte of a request head. */
static int scan_byte(tk_headscan *s, unsigned char ch)
{
	if (++s->head_bytes > s->max_head)
		return scan_fail(s, 431, "the request line and headers are too large");
	if (s->cr && ch != '\n')
		return scan_fail(s, 400, "a CR must be followed by LF");
	if (ch == '\n') {
		s->cr = 0;
		return scan_eol(s);
	}
	if (ch == '\r') {
		s->cr = 1;
		return TK_HS_MORE;
	}
	switch ((scan_state)s->st) {
	case SC_START:
	case SC_METHOD:
		if (is_tchar(ch)) {
			if (s->mlen < sizeof(s->method) - 1)
				s->method[s->mlen] = (char)ch;
			s->mlen++;
			s->st = SC_METHOD;
			return TK_HS_MORE;
		}
		if (ch == ' ' && s->st == SC_METHOD) {
			s->st = SC_TARGET;
			return TK_HS_MORE;
		}
		return scan_fail(s, 400, "the request method must be a token");
	case SC_TARGET:
		if (ch > 0x20 && ch < 0x7f) {
			if (s->tlen < sizeof(s->target))
				s->target[s->tlen] = (char)ch;
			s->tlen++;
			return TK_HS_MORE;
		}
		if (ch == ' ' && s->tlen > 0) {
			s->st = SC_VERSION;
			return TK_HS_MORE;
		}
		return scan_fail(s, 400, "the request target must be visible ASCII, with no spaces");
	case SC_VERSION:
		if (s->vlen >= 8)
			return scan_fail(s, 400, "the HTTP version must be HTTP/1.1 or HTTP/1.0");
		s->version[s->vlen++] = (char)ch;
		return TK_HS_MORE;
	case SC_FIELD:
		if (ch == ' ' || ch == '\t')
			return scan_fail(s, 400, "header lines must not be folded (obs-fold)");
		s->st = SC_NAME;
		s->nlen = 0;
		return scan_name(s, ch);
	case SC_NAME:
		return scan_name(s, ch);
	case SC_VALUE:
		/* field-value: VCHAR, obs-text, SP and HTAB; no other control byte. */
		if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
			return scan_fail(s, 400, "header values must not contain control characters");
		if (s->field != F_LENGTH)
			return TK_HS_MORE;
		/* Content-Length = 1*DIGIT, with optional whitespace around it. */
		if (ch == ' ' || ch == '\t') {
			s->cl_tail = s->cl_digits > 0;
			return TK_HS_MORE;
		}
		if (ch < '0' || ch > '9' || s->cl_tail)
			return scan_fail(s, 400, "Content-Length must be a decimal number of bytes");
		if (++s->cl_digits > 15)
			return scan_fail(s, 400, "Content-Length is out of range");
		s->cl = s->cl * 10 + (uint64_t)(ch - '0');
		return TK_HS_MORE;
	}
	return scan_fail(s, 400, "malformed request");
}

/* Bytes of a field value that scan_byte would take without a change of
 * state, from p[0] up to n: not CR, LF or another control byte, within
 * max_head. Most of a head is values (Authorization, Host, User-Agent); the
 * byte that ends the run goes through scan_byte as ever. */
static size_t value_run(tk_headscan *s, const unsigned char *p, size_t n)
{
	if (s->st != SC_VALUE || s->field == F_LENGTH || s->cr || s->head_bytes >= s->max_head)
		return 0;
	size_t room = s->max_head - s->head_bytes;
	size_t lim = n < room ? n : room, j = 0;
	while (j < lim && (p[j] >= 0x20 || p[j] == '\t') && p[j] != 0x7f)
		j++;
	s->head_bytes += j;
	return j;
}

int tk_headscan_feed(tk_headscan *s, const unsigned char *p, size_t n, size_t *used)
{
	for (size_t i = 0; i < n; i++) {
		i += value_run(s, p + i, n - i);
		if (i == n)
			break;
		int r = scan_byte(s, p[i]);
		if (r != TK_HS_MORE) {
			*used = i + 1;
			return r;
		}
	}
	*used = n;
	return TK_HS_MORE;
}

const char *tk_headscan_path(const tk_headscan *s, size_t *len, int *truncated)
{
	size_t kept = s->tlen < sizeof(s->target) ? s->tlen : sizeof(s->target);
	const char *q = memchr(s->target, '?', kept);
	*truncated = !q && s->tlen > kept;
	*len = q ? (size_t)(q - s->target) : kept;
	return s->target;
}
