/*
 * statuslist.c - Token Status List (draft-ietf-oauth-status-list), JWT form:
 * encoding a list (ZLIB + base64url), verifying and decoding a status list
 * token with the access-token verifier's own JWS code (verify_int.h), and the
 * verifier's cache with its refresh rule (see statuslist.h).
 *
 * Inflation is bounded: a "lst" that would inflate beyond TK_STATUS_BYTES_MAX
 * is refused as soon as the output reaches the bound, so a small compressed
 * bomb costs at most that much memory.
 */
#include "tokend/statuslist.h"
#include "tokend/crypto.h"
#include "internal.h"
#include "verify_int.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

struct tk_status_list {
	unsigned char *bytes;
	size_t n;                    /* bytes */
	int64_t iat, exp, ttl;
	long leeway;                 /* of the verifier that installed it */
};

struct tk_status_cache {
	pthread_mutex_t mu;
	char *uri;
	long refresh_min, refresh_max;
	tk_status_list *list;
	int64_t fetched_at;          /* when `list` was installed */
	int64_t attempt_at;          /* last install or failure */
	bool attempted;
	bool want_refresh;           /* a check found an index beyond the list */
};

static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tk_vseterr(err, errlen, fmt, ap);
	va_end(ap);
	return code;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                 */

char *tk_status_list_encode(const unsigned char *bytes, size_t n, char *err, size_t errlen)
{
	uLongf clen;
	unsigned char *z = NULL;
	char *out = NULL;

	if (bytes == NULL || n == 0 || n > TK_STATUS_BYTES_MAX) {
		tk_seterr(err, errlen, "a status list has 1 to %d bytes", TK_STATUS_BYTES_MAX);
		return NULL;
	}
	clen = compressBound((uLong)n);
	z = malloc(clen);
	if (z == NULL || compress2(z, &clen, bytes, (uLong)n, Z_BEST_COMPRESSION) != Z_OK) {
		tk_seterr(err, errlen, z == NULL ? "out of memory" : "zlib failed to compress");
		goto out;
	}
	out = malloc(tk_b64url_encoded_len(clen) + 1);
	if (out == NULL) {
		tk_seterr(err, errlen, "out of memory");
		goto out;
	}
	tk_b64url_encode(z, clen, out);
out:
	free(z);
	return out;
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */

/* Inflate the ZLIB stream `z` into a new buffer of at most
 * TK_STATUS_BYTES_MAX bytes. 0, or -1 with why. */
static int inflate_bounded(const unsigned char *z, size_t zn, unsigned char **out, size_t *outn,
                           char *why, size_t wl)
{
	z_stream s;
	size_t cap = zn * 4 + 64, n = 0;
	unsigned char *buf;
	int rc = -1, zr;

	*out = NULL;
	*outn = 0;
	if (cap > TK_STATUS_BYTES_MAX)
		cap = TK_STATUS_BYTES_MAX;
	memset(&s, 0, sizeof(s));
	if (inflateInit(&s) != Z_OK) {          /* ZLIB format (RFC 1950) only */
		tk_seterr(why, wl, "zlib failed to start");
		return -1;
	}
	buf = malloc(cap);
	if (buf == NULL) {
		tk_seterr(why, wl, "out of memory");
		goto out;
	}
	s.next_in = (Bytef *)(uintptr_t)z;
	s.avail_in = (uInt)zn;
	for (;;) {
		if (n == cap) {
			unsigned char *bigger;
			if (cap == TK_STATUS_BYTES_MAX) {
				tk_seterr(why, wl, "the list inflates to more than %d bytes",
				          TK_STATUS_BYTES_MAX);
				goto out;
			}
			cap = cap * 2 > TK_STATUS_BYTES_MAX ? TK_STATUS_BYTES_MAX : cap * 2;
			bigger = realloc(buf, cap);
			if (bigger == NULL) {
				tk_seterr(why, wl, "out of memory");
				goto out;
			}
			buf = bigger;
		}
		s.next_out = buf + n;
		s.avail_out = (uInt)(cap - n);
		zr = inflate(&s, Z_NO_FLUSH);
		n = cap - s.avail_out;
		if (zr == Z_STREAM_END)
			break;
		if (zr != Z_OK && !(zr == Z_BUF_ERROR && s.avail_out == 0)) {
			tk_seterr(why, wl, "\"lst\" is not a complete ZLIB stream");
			goto out;
		}
	}
	if (s.avail_in != 0) {
		tk_seterr(why, wl, "data after the end of the ZLIB stream");
		goto out;
	}
	if (n == 0) {
		tk_seterr(why, wl, "the list is empty");
		goto out;
	}
	*out = buf;
	*outn = n;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	inflateEnd(&s);
	return rc;
}

static int int_claim(json_t *p, const char *name, bool required, int64_t *v, char *err,
                     size_t errlen)
{
	json_t *c = json_object_get(p, name);

	*v = 0;
	if (c == NULL)
		return required ? fail(TK_VERIFY_MISSING_CLAIM, err, errlen,
		                       "status list: claim \"%s\" is missing", name) : TK_VERIFY_OK;
	if (!json_is_integer(c))
		return fail(TK_VERIFY_CLAIM_TYPE, err, errlen,
		            "status list: claim \"%s\" is not an integer", name);
	*v = (int64_t)json_integer_value(c);
	return TK_VERIFY_OK;
}

int tk_status_list_parse(const tk_verifier *v, const char *token, size_t len, const char *uri,
                         int64_t now, tk_status_list **out, char *err, size_t errlen)
{
	const struct vkey *key = NULL;
	json_t *p = NULL, *sl, *j;
	const char *s, *lst;
	unsigned char *z = NULL;
	tk_status_list *l = NULL;
	long leeway, zn;
	char why[160];
	int rc;

	if (out != NULL)
		*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (v == NULL || token == NULL || uri == NULL || out == NULL)
		return fail(TK_VERIFY_EINVAL, err, errlen, "no verifier, token, URI or output");
	if (now < INT64_MIN / 2 || now > INT64_MAX / 2)
		return fail(TK_VERIFY_EINVAL, err, errlen, "clock value out of range");
	if (tk_verifier_key_count(v) == 0)
		return fail(TK_VERIFY_EINVAL, err, errlen, "verifier has no keys");
	rc = tk_verify_jws(v, token, len, TK_STATUS_TOKEN_MAX, TK_JWS_STATUSLIST, &key, &p, err,
	                   errlen);
	if (rc != TK_VERIFY_OK)
		return rc;
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		rc = fail(TK_VERIFY_NOMEM, err, errlen, "out of memory");
		goto out;
	}
	leeway = tk_verifier_leeway(v);
	l->leeway = leeway;

	j = json_object_get(p, "sub");
	s = json_string_value(j);
	if (s == NULL) {
		rc = fail(j ? TK_VERIFY_CLAIM_TYPE : TK_VERIFY_MISSING_CLAIM, err, errlen,
		          "status list: claim \"sub\" is %s", j ? "not a string" : "missing");
		goto out;
	}
	if (strlen(s) != json_string_length(j) || strcmp(s, uri) != 0) {
		rc = fail(TK_VERIFY_CLAIM_TYPE, err, errlen,
		          "status list: \"sub\" is not the list's URI");
		goto out;
	}
	j = json_object_get(p, "iss");
	if (j != NULL && tk_verifier_issuer(v) != NULL &&
	    (json_string_value(j) == NULL || strcmp(json_string_value(j), tk_verifier_issuer(v)) != 0)) {
		rc = fail(TK_VERIFY_ISSUER, err, errlen, "status list: issuer is not the expected one");
		goto out;
	}
	if ((rc = int_claim(p, "iat", true, &l->iat, err, errlen)) != 0 ||
	    (rc = int_claim(p, "exp", true, &l->exp, err, errlen)) != 0 ||
	    (rc = int_claim(p, "ttl", false, &l->ttl, err, errlen)) != 0)
		goto out;
	if (json_object_get(p, "ttl") != NULL && l->ttl <= 0) {
		rc = fail(TK_VERIFY_CLAIM_TYPE, err, errlen, "status list: \"ttl\" is not positive");
		goto out;
	}
	if (l->exp <= now - leeway) {
		rc = fail(TK_VERIFY_EXPIRED, err, errlen, "status list expired");
		goto out;
	}
	if (l->iat > now + leeway) {
		rc = fail(TK_VERIFY_IAT_FUTURE, err, errlen, "status list issued in the future (iat)");
		goto out;
	}

	sl = json_object_get(p, "status_list");
	if (!json_is_object(sl)) {
		rc = fail(sl ? TK_VERIFY_CLAIM_TYPE : TK_VERIFY_MISSING_CLAIM, err, errlen,
		          "status list: claim \"status_list\" is %s", sl ? "not an object" : "missing");
		goto out;
	}
	j = json_object_get(sl, "bits");
	if (!json_is_integer(j) || json_integer_value(j) != 1) {
		rc = fail(TK_VERIFY_CLAIM_TYPE, err, errlen,
		          "status list: \"bits\" is not 1 (only one bit per token is understood)");
		goto out;
	}
	j = json_object_get(sl, "lst");
	lst = json_string_value(j);
	if (lst == NULL || json_string_length(j) == 0) {
		rc = fail(TK_VERIFY_CLAIM_TYPE, err, errlen, "status list: \"lst\" is not a string");
		goto out;
	}
	z = malloc(json_string_length(j) * 3 / 4 + 4);
	if (z == NULL) {
		rc = fail(TK_VERIFY_NOMEM, err, errlen, "out of memory");
		goto out;
	}
	zn = tk_b64url_decode(lst, json_string_length(j), z);
	if (zn <= 0) {
		rc = fail(TK_VERIFY_MALFORMED, err, errlen,
		          "status list: \"lst\" is not canonical base64url");
		goto out;
	}
	if (inflate_bounded(z, (size_t)zn, &l->bytes, &l->n, why, sizeof(why)) != 0) {
		rc = fail(TK_VERIFY_MALFORMED, err, errlen, "status list: %s", why);
		goto out;
	}
	*out = l;
	l = NULL;
	rc = TK_VERIFY_OK;
out:
	free(z);
	tk_status_list_free(l);
	json_decref(p);
	return rc;
}

int tk_status_list_get(const tk_status_list *l, int64_t idx)
{
	if (l == NULL || idx < 0 || (uint64_t)idx / 8 >= l->n)
		return -1;
	return (l->bytes[idx / 8] >> (idx % 8)) & 1;
}

size_t tk_status_list_size(const tk_status_list *l)
{
	return l ? l->n * 8 : 0;
}

int64_t tk_status_list_iat(const tk_status_list *l)
{
	return l ? l->iat : 0;
}

int64_t tk_status_list_exp(const tk_status_list *l)
{
	return l ? l->exp : 0;
}

int64_t tk_status_list_ttl(const tk_status_list *l)
{
	return l ? l->ttl : 0;
}

void tk_status_list_free(tk_status_list *l)
{
	if (l == NULL)
		return;
	free(l->bytes);
	free(l);
}

/* ------------------------------------------------------------------------ */
/* Cache                                                                    */

tk_status_cache *tk_status_cache_new(const char *uri, long refresh_min, long refresh_max,
                                     char *err, size_t errlen)
{
	tk_status_cache *c;

	if (uri == NULL || (strncmp(uri, "http://", 7) != 0 && strncmp(uri, "https://", 8) != 0) ||
	    strlen(uri) > TK_VERIFY_URI_MAX) {
		tk_seterr(err, errlen, "the status list URI must be an http(s) URL of at most %d bytes",
		          TK_VERIFY_URI_MAX);
		return NULL;
	}
	for (const char *p = uri; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			tk_seterr(err, errlen, "the status list URI holds a space or control character");
			return NULL;
		}
	if (refresh_min < TK_STATUS_REFRESH_FLOOR || refresh_max > TK_STATUS_REFRESH_CEIL ||
	    refresh_min > refresh_max) {
		tk_seterr(err, errlen, "status list refresh bounds must be %d <= min <= max <= %d seconds",
		          TK_STATUS_REFRESH_FLOOR, TK_STATUS_REFRESH_CEIL);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->uri = strdup(uri)) == NULL) {
		free(c);
		tk_seterr(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	c->refresh_min = refresh_min;
	c->refresh_max = refresh_max;
	return c;
}

void tk_status_cache_free(tk_status_cache *c)
{
	if (c == NULL)
		return;
	tk_status_list_free(c->list);
	free(c->uri);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

const char *tk_status_cache_uri(const tk_status_cache *c)
{
	return c ? c->uri : NULL;
}

int tk_status_cache_due(tk_status_cache *c, int64_t now)
{
	int due;
	int64_t period;

	if (c == NULL)
		return 0;
	pthread_mutex_lock(&c->mu);
	if (c->attempted && now - c->attempt_at < c->refresh_min) {
		due = 0;
	} else if (c->list == NULL || c->want_refresh || now >= c->list->exp) {
		due = 1;
	} else {
		period = c->list->ttl > 0 ? c->list->ttl : c->refresh_max;
		if (period < c->refresh_min)
			period = c->refresh_min;
		if (period > c->refresh_max)
			period = c->refresh_max;
		due = now - c->fetched_at >= period;
	}
	pthread_mutex_unlock(&c->mu);
	return due;
}

int tk_status_cache_install(tk_status_cache *c, const tk_verifier *v, const char *token,
                            size_t len, int64_t now, char *err, size_t errlen)
{
	tk_status_list *l = NULL;
	int rc;

	if (c == NULL)
		return fail(TK_VERIFY_EINVAL, err, errlen, "no status list cache");
	rc = tk_status_list_parse(v, token, len, c->uri, now, &l, err, errlen);
	pthread_mutex_lock(&c->mu);
	c->attempted = true;
	c->attempt_at = now;
	/* A list issued before the one held (a replay, a stale cache on the way)
	 * could clear bits of keys revoked since: never installed. */
	if (rc == TK_VERIFY_OK && c->list != NULL && l->iat < c->list->iat) {
		rc = fail(TK_VERIFY_CLAIM_TYPE, err, errlen,
		          "status list: issued before the list already held (a replay?)");
		tk_status_list_free(l);
		l = NULL;
	}
	if (rc == TK_VERIFY_OK) {
		tk_status_list_free(c->list);
		c->list = l;
		c->fetched_at = now;
		c->want_refresh = false;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

void tk_status_cache_failed(tk_status_cache *c, int64_t now)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->attempted = true;
	c->attempt_at = now;
	pthread_mutex_unlock(&c->mu);
}

int tk_status_check(tk_status_cache *c, const tk_claims *claims, int64_t now, char *err,
                    size_t errlen)
{
	json_t *st, *sl, *idx_j, *uri_j;
	json_int_t idx;
	int rc, bit;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (c == NULL || claims == NULL || claims->json == NULL)
		return fail(TK_VERIFY_EINVAL, err, errlen, "no cache or no verified claims");
	st = json_object_get(claims->json, "status");
	if (st == NULL)
		return TK_VERIFY_OK;
	sl = json_object_get(st, "status_list");
	idx_j = json_object_get(sl, "idx");
	uri_j = json_object_get(sl, "uri");
	if (!json_is_object(st) || !json_is_object(sl) || !json_is_integer(idx_j) ||
	    json_integer_value(idx_j) < 0 || !json_is_string(uri_j))
		return fail(TK_VERIFY_STATUS_UNKNOWN, err, errlen, "the \"status\" claim is malformed");
	if (json_string_length(uri_j) != strlen(c->uri) ||
	    strcmp(json_string_value(uri_j), c->uri) != 0)
		return fail(TK_VERIFY_STATUS_UNKNOWN, err, errlen,
		            "the token names a status list other than the configured one");
	idx = json_integer_value(idx_j);

	pthread_mutex_lock(&c->mu);
	if (c->list == NULL) {
		rc = fail(TK_VERIFY_STATUS_UNKNOWN, err, errlen, "no status list fetched yet");
	} else if (c->list->exp <= now - c->list->leeway) {
		rc = fail(TK_VERIFY_STATUS_UNKNOWN, err, errlen,
		          "the status list expired and no newer one could be fetched");
	} else if ((bit = tk_status_list_get(c->list, (int64_t)idx)) < 0) {
		c->want_refresh = true;
		rc = fail(TK_VERIFY_STATUS_UNKNOWN, err, errlen,
		          "the token's index lies beyond the status list");
	} else if (bit == 1) {
		rc = fail(TK_VERIFY_STATUS, err, errlen,
		          "the status list marks the token's key as no longer valid");
	} else {
		rc = TK_VERIFY_OK;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}
