/*
 * form.c - strict application/x-www-form-urlencoded and HTTP Basic parsers
 * for untrusted token-endpoint input (RFC 6749 §2.3.1, §3.1, appendix B;
 * RFC 7617; RFC 8707 §2 for the repeatable `resource`).
 *
 * Every loop is bounded by the caller's length; no input is assumed to be
 * NUL-terminated. Decoding goes through a fixed-size stack buffer, so a
 * refused request allocates at most the parameters already accepted, and
 * every buffer that may have held a secret is wiped before it is released.
 */
#include "tokend/form.h"

#include <stdlib.h>
#include <string.h>

#include "tokend/crypto.h"

#include "internal.h"

static void set_why(const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
}

/* ---- shared decoding ---------------------------------------------------- */

typedef enum dec_status {
	DEC_OK = 0,
	DEC_RAW_NUL,    /* a raw 0x00 byte */
	DEC_RAW_CTL,    /* a raw byte < 0x20 or 0x7f */
	DEC_BAD_PCT,    /* '%' not followed by two hex digits */
	DEC_PCT_NUL,    /* %00 */
	DEC_PCT_CTL,    /* %XX decoding to < 0x20 or 0x7f */
	DEC_TOO_LONG,   /* decoded output over the limit */
	DEC_BAD_UTF8,   /* decoded output is not valid UTF-8 */
} dec_status;

static int is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/*
 * Strict UTF-8 (RFC 3629 §4): no overlong forms (C0, C1, E0 80-9F, F0 80-8F),
 * no surrogates (ED A0-BF), nothing above U+10FFFF (F4 90+, F5-FF), no stray
 * continuation bytes, no truncated sequences.
 */
static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t need;
		unsigned char lo = 0x80, hi = 0xbf;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
		} else if (c == 0xe0) {
			need = 2;
			lo = 0xa0;
		} else if (c == 0xed) {
			need = 2;
			hi = 0x9f;
		} else if (c >= 0xe1 && c <= 0xef) {
			need = 2;
		} else if (c == 0xf0) {
			need = 3;
			lo = 0x90;
		} else if (c >= 0xf1 && c <= 0xf3) {
			need = 3;
		} else if (c == 0xf4) {
			need = 3;
			hi = 0x8f;
		} else {
			return 0;
		}
		if (n - i - 1 < need)
			return 0;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t k = 2; k <= need; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
		i += need + 1;
	}
	return 1;
}

/*
 * Form-urldecode in[0..len) into out (room for max bytes plus a NUL):
 * '+' is a space, %XX the byte XX. On DEC_OK, out is NUL-terminated and
 * *out_len set; otherwise out holds a partial result the caller must wipe.
 */
/* Printable ASCII but '%' and '+': a byte url_decode copies as it is. */
static int plain_byte(unsigned char c)
{
	return ((unsigned)c - 0x20U < 0x5fU) & (c != '%') & (c != '+');
}

static dec_status url_decode(const char *in, size_t len, char *out, size_t max, size_t *out_len)
{
	/* The usual value (a key ID, a secret, a grant type) is plain bytes
	 * only: one scan and one copy, and nothing for the UTF-8 check. */
	size_t plain = 0;
	while (plain < len && plain_byte((unsigned char)in[plain]))
		plain++;
	if (plain == len) {
		if (len > max)
			return DEC_TOO_LONG;
		memcpy(out, in, len);
		out[len] = '\0';
		*out_len = len;
		return DEC_OK;
	}

	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == 0)
			return DEC_RAW_NUL;
		if (is_ctl(c))
			return DEC_RAW_CTL;
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int h, l;
			if (len - i < 3)
				return DEC_BAD_PCT;
			h = tk_hex_digit((unsigned char)in[i + 1]);
			l = tk_hex_digit((unsigned char)in[i + 2]);
			if (h < 0 || l < 0)
				return DEC_BAD_PCT;
			c = (unsigned char)(h << 4 | l);
			i += 2;
			if (c == 0)
				return DEC_PCT_NUL;
			if (is_ctl(c))
				return DEC_PCT_CTL;
		}
		if (o == max)
			return DEC_TOO_LONG;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	if (!utf8_valid((const unsigned char *)out, o))
		return DEC_BAD_UTF8;
	*out_len = o;
	return DEC_OK;
}

static char *dup_bytes(const char *s, size_t len)
{
	char *p = malloc(len + 1);
	if (p != NULL) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

/* ---- urlencoded bodies -------------------------------------------------- */

/* Static refusals for repeated names we know; no request bytes are echoed. */
static const struct {
	const char *name;
	const char *why;
} repeated_reasons[] = {
	{ "grant_type", "repeated parameter grant_type" },
	{ "client_id", "repeated parameter client_id" },
	{ "client_secret", "repeated parameter client_secret" },
	{ "scope", "repeated parameter scope" },
	{ "resource", "repeated parameter resource" },
	{ "audience", "repeated parameter audience" },
	{ "token", "repeated parameter token" },
	{ "token_type_hint", "repeated parameter token_type_hint" },
	{ "client_assertion", "repeated parameter client_assertion" },
	{ "client_assertion_type", "repeated parameter client_assertion_type" },
};

static const char *repeated_why(const char *name)
{
	for (size_t i = 0; i < sizeof(repeated_reasons) / sizeof(repeated_reasons[0]); i++)
		if (strcmp(repeated_reasons[i].name, name) == 0)
			return repeated_reasons[i].why;
	return "repeated parameter";
}

static int is_repeatable(const char *const *repeatable, const char *name)
{
	if (repeatable == NULL)
		return 0;
	for (size_t i = 0; repeatable[i] != NULL; i++)
		if (strcmp(repeatable[i], name) == 0)
			return 1;
	return 0;
}

static const char *form_dec_why(dec_status st, int is_name)
{
	switch (st) {
	case DEC_RAW_NUL:  return "NUL byte in form body";
	case DEC_RAW_CTL:  return "control character in form body";
	case DEC_BAD_PCT:  return "malformed percent-encoding";
	case DEC_PCT_NUL:  return "percent-encoded NUL in form body";
	case DEC_PCT_CTL:  return "percent-encoded control character in form body";
	case DEC_TOO_LONG: return is_name ? "parameter name too long" : "parameter value too long";
	case DEC_BAD_UTF8: return is_name ? "invalid UTF-8 in parameter name"
	                                  : "invalid UTF-8 in parameter value";
	case DEC_OK:       break;
	}
	return "form decoding failed";
}

int tk_form_parse(const char *body, size_t len, const char *const *repeatable,
                  tk_form *out, const char **why)
{
	char buf[TK_FORM_VALUE_MAX + 1];
	const char *reason = NULL;
	size_t seg = 0;
	size_t touched = 0;   /* bytes of buf written so far: all that needs wiping */

	if (out == NULL) {
		set_why(why, "no output form");
		return -1;
	}
	memset(out, 0, sizeof(*out));
	if (len == 0) {
		set_why(why, NULL);
		return 0;
	}
	if (body == NULL) {
		set_why(why, "form body is missing");
		return -1;
	}

	/* Raw control bytes anywhere refuse the whole body, wherever they sit. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)body[i];
		if (c == 0) {
			set_why(why, "NUL byte in form body");
			return -1;
		}
		if (is_ctl(c)) {
			set_why(why, "control character in form body");
			return -1;
		}
	}

	for (size_t i = 0; i <= len && reason == NULL; i++) {
		const char *s, *eq, *v;
		size_t slen, nlen, vlen, dlen;
		char *name, *value;
		dec_status st;

		if (i < len && body[i] != '&')
			continue;
		s = body + seg;
		slen = i - seg;
		seg = i + 1;
		if (slen == 0)
			continue; /* "a=1&&b=2", leading or trailing '&' */
		if (out->n == TK_FORM_MAX_PARAMS) {
			reason = "too many parameters";
			break;
		}
		/* Each decode below writes at most its input's bytes and a NUL into buf. */
		if (touched < slen + 1)
			touched = slen + 1 < sizeof(buf) ? slen + 1 : sizeof(buf);
		eq = memchr(s, '=', slen);
		nlen = eq != NULL ? (size_t)(eq - s) : slen;
		v = eq != NULL ? eq + 1 : s + slen;
		vlen = eq != NULL ? slen - nlen - 1 : 0;
		if (nlen == 0) {
			reason = "empty parameter name";
			break;
		}

		st = url_decode(s, nlen, buf, TK_FORM_NAME_MAX, &dlen);
		if (st != DEC_OK) {
			reason = form_dec_why(st, 1);
			break;
		}
		for (size_t j = 0; j < out->n; j++) {
			if (strcmp(out->name[j], buf) == 0 && !is_repeatable(repeatable, buf)) {
				reason = repeated_why(buf);
				break;
			}
		}
		if (reason != NULL)
			break;
		name = dup_bytes(buf, dlen);
		if (name == NULL) {
			reason = "out of memory";
			break;
		}

		st = url_decode(v, vlen, buf, TK_FORM_VALUE_MAX, &dlen);
		if (st != DEC_OK) {
			free(name);
			reason = form_dec_why(st, 0);
			break;
		}
		value = dup_bytes(buf, dlen);
		if (value == NULL) {
			free(name);
			reason = "out of memory";
			break;
		}
		out->name[out->n] = name;
		out->value[out->n] = value;
		out->n++;
	}

	tk_wipe(buf, touched);
	if (reason != NULL) {
		tk_form_free(out);
		set_why(why, reason);
		return -1;
	}
	set_why(why, NULL);
	return 0;
}

const char *tk_form_get_nth(const tk_form *f, const char *name, size_t index)
{
	if (f == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < f->n && i < TK_FORM_MAX_PARAMS; i++) {
		if (f->name[i] != NULL && strcmp(f->name[i], name) == 0) {
			if (index == 0)
				return f->value[i];
			index--;
		}
	}
	return NULL;
}

const char *tk_form_get(const tk_form *f, const char *name)
{
	return tk_form_get_nth(f, name, 0);
}

const char *tk_form_get_nonempty(const tk_form *f, const char *name)
{
	const char *v = tk_form_get_nth(f, name, 0);
	return v != NULL && v[0] != '\0' ? v : NULL;
}

size_t tk_form_count_name(const tk_form *f, const char *name)
{
	size_t count = 0;
	if (f == NULL || name == NULL)
		return 0;
	for (size_t i = 0; i < f->n && i < TK_FORM_MAX_PARAMS; i++)
		if (f->name[i] != NULL && strcmp(f->name[i], name) == 0)
			count++;
	return count;
}

void tk_form_free(tk_form *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n && i < TK_FORM_MAX_PARAMS; i++) {
		free(f->name[i]);
		if (f->value[i] != NULL) {
			tk_wipe(f->value[i], strlen(f->value[i]));
			free(f->value[i]);
		}
	}
	memset(f, 0, sizeof(*f));
}

/* ---- HTTP Basic --------------------------------------------------------- */

#define BASIC_RAW_MAX (TK_BASIC_HEADER_MAX / 4 * 3)

/* The value of a standard base64 character, or -1 (no branch on c). */
static int b64_val(unsigned char c)
{
	return tk_b64_value(c, TK_B64_STD);
}

/* Strict RFC 4648 §4 decoding of t[0..tlen) (tlen > 0) into out (>= tlen/4*3
 * bytes). Returns the decoded length, or -1 with *why set. */
static long b64_decode_strict(const char *t, size_t tlen, unsigned char *out, const char **why)
{
	size_t pad = 0, o = 0;

	/* Every character base64 or '=', and where the '=' are: one pass, no
	 * branch per character (the same cost whatever the text). */
	int bad = 0;                      /* negative once one is neither */
	size_t eqs = 0;
	for (size_t i = 0; i < tlen; i++) {
		unsigned char c = (unsigned char)t[i];
		bad |= b64_val(c) & -(int)(c != '=');
		eqs += c == '=';
	}
	if (bad < 0) {
		set_why(why, "invalid base64 character in Basic credentials");
		return -1;
	}
	if (tlen % 4 != 0) {
		set_why(why, "base64 length is not a multiple of 4 in Basic credentials");
		return -1;
	}
	if (t[tlen - 1] == '=')
		pad = t[tlen - 2] == '=' ? 2 : 1;
	if (eqs != pad) {                 /* a '=' before the last `pad` characters */
		set_why(why, "misplaced base64 padding in Basic credentials");
		return -1;
	}
	for (size_t i = 0; i < tlen; i += 4) {
		int last = i + 4 == tlen;
		size_t p = last ? pad : 0;
		unsigned long v0 = (unsigned long)b64_val((unsigned char)t[i]);
		unsigned long v1 = (unsigned long)b64_val((unsigned char)t[i + 1]);
		unsigned long v2 = p >= 2 ? 0 : (unsigned long)b64_val((unsigned char)t[i + 2]);
		unsigned long v3 = p >= 1 ? 0 : (unsigned long)b64_val((unsigned char)t[i + 3]);
		unsigned long bits = v0 << 18 | v1 << 12 | v2 << 6 | v3;

		if ((p == 2 && (v1 & 0x0f) != 0) || (p == 1 && (v2 & 0x03) != 0)) {
			set_why(why, "non-canonical base64 in Basic credentials");
			return -1;
		}
		out[o++] = (unsigned char)(bits >> 16);
		if (p < 2)
			out[o++] = (unsigned char)(bits >> 8);
		if (p < 1)
			out[o++] = (unsigned char)bits;
	}
	return (long)o;
}

static const char *basic_dec_why(dec_status st)
{
	switch (st) {
	case DEC_RAW_NUL:  return "NUL byte in Basic credentials";
	case DEC_RAW_CTL:  return "control character in Basic credentials";
	case DEC_BAD_PCT:  return "malformed percent-encoding in Basic credentials";
	case DEC_PCT_NUL:  return "percent-encoded NUL in Basic credentials";
	case DEC_PCT_CTL:  return "percent-encoded control character in Basic credentials";
	case DEC_TOO_LONG: return "Basic credentials too long";
	case DEC_BAD_UTF8: return "invalid UTF-8 in Basic credentials";
	case DEC_OK:       break;
	}
	return "Basic credentials decoding failed";
}

static int ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

int tk_basic_parse(const char *header_value, size_t len, char **client_id,
                   char **client_secret, const char **why)
{
	static const char scheme[] = "basic";
	const size_t scheme_len = sizeof(scheme) - 1;
	unsigned char raw[BASIC_RAW_MAX + 1];
	char id[BASIC_RAW_MAX + 1], secret[BASIC_RAW_MAX + 1];
	const char *reason = NULL;
	const unsigned char *colon;
	size_t sp, p, id_len = 0, secret_len = 0, touched;
	long raw_len = 0;
	dec_status st;

	if (client_id == NULL || client_secret == NULL) {
		set_why(why, "no output for Basic credentials");
		return -1;
	}
	*client_id = NULL;
	*client_secret = NULL;
	if (header_value == NULL) {
		set_why(why, "Authorization header is missing");
		return -1;
	}
	if (len > TK_BASIC_HEADER_MAX) {
		set_why(why, "Authorization header too long");
		return -1;
	}

	/* auth-scheme: everything up to the first SP, compared without case. */
	for (sp = 0; sp < len && header_value[sp] != ' '; sp++)
		;
	if (sp != scheme_len) {
		set_why(why, "not the Basic authentication scheme");
		return -1;
	}
	for (size_t i = 0; i < scheme_len; i++) {
		if (ascii_lower((unsigned char)header_value[i]) != scheme[i]) {
			set_why(why, "not the Basic authentication scheme");
			return -1;
		}
	}
	for (p = sp; p < len && header_value[p] == ' '; p++)
		;
	if (p == len) {
		set_why(why, "missing Basic credentials");
		return -1;
	}

	/* From here raw, id and secret each receive at most len - p bytes and a
	 * NUL (base64 decodes shorter, percent-decoding never longer): only those
	 * are wiped, not the whole of each buffer. */
	touched = len - p + 1 < sizeof(raw) ? len - p + 1 : sizeof(raw);
	raw_len = b64_decode_strict(header_value + p, len - p, raw, &reason);
	if (raw_len < 0)
		goto refuse;

	colon = memchr(raw, ':', (size_t)raw_len);
	if (colon == NULL) {
		reason = "no ':' in Basic credentials";
		goto refuse;
	}
	if (colon == raw) {
		reason = "empty client_id in Basic credentials";
		goto refuse;
	}
	st = url_decode((const char *)raw, (size_t)(colon - raw), id, BASIC_RAW_MAX, &id_len);
	if (st == DEC_OK)
		st = url_decode((const char *)colon + 1, (size_t)raw_len - (size_t)(colon - raw) - 1,
		                secret, BASIC_RAW_MAX, &secret_len);
	if (st != DEC_OK) {
		reason = basic_dec_why(st);
		goto refuse;
	}
	*client_id = dup_bytes(id, id_len);
	*client_secret = dup_bytes(secret, secret_len);
	if (*client_id == NULL || *client_secret == NULL) {
		tk_basic_free(*client_id, *client_secret);
		*client_id = NULL;
		*client_secret = NULL;
		reason = "out of memory";
		goto refuse;
	}
	tk_wipe(raw, touched);
	tk_wipe(id, touched);
	tk_wipe(secret, touched);
	set_why(why, NULL);
	return 0;

refuse:
	tk_wipe(raw, touched);
	tk_wipe(id, touched);
	tk_wipe(secret, touched);
	set_why(why, reason);
	return -1;
}

void tk_basic_free(char *client_id, char *client_secret)
{
	if (client_secret != NULL) {
		tk_wipe(client_secret, strlen(client_secret));
		free(client_secret);
	}
	free(client_id);
}
