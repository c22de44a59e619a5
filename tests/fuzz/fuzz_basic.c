/*
 * fuzz_basic.c - tk_basic_parse (HTTP Basic client credentials, SECURITY A2),
 * checked against a reference model of form.h's rules: strict base64 is
 * "re-encoding the decoded bytes gives the text back", then the split at the
 * first ':' and form-urldecoding of both parts.
 */
#include "fuzz.h"

#include <tokend/form.h>

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64v(unsigned char c)
{
	const char *p = c ? strchr(B64, c) : NULL;
	return p ? (int)(p - B64) : -1;
}

/* Decode t[0..n) leniently, then demand that the canonical encoding of the
 * result is exactly t. Returns the decoded length, or -1. */
static long ref_b64(const char *t, size_t n, unsigned char *out)
{
	size_t body = n, o = 0;
	unsigned long acc = 0;
	int bits = 0;
	while (body > 0 && n - body < 2 && t[body - 1] == '=')
		body--;
	for (size_t i = 0; i < body; i++) {
		int v = b64v((unsigned char)t[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned long)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1UL << bits) - 1;
		}
	}
	/* Re-encode and compare. */
	size_t e = 0;
	char enc[TK_BASIC_HEADER_MAX + 8];
	for (size_t i = 0; i < o; i += 3) {
		unsigned long v = (unsigned long)out[i] << 16;
		if (i + 1 < o) v |= (unsigned long)out[i + 1] << 8;
		if (i + 2 < o) v |= out[i + 2];
		enc[e++] = B64[(v >> 18) & 63];
		enc[e++] = B64[(v >> 12) & 63];
		enc[e++] = i + 1 < o ? B64[(v >> 6) & 63] : '=';
		enc[e++] = i + 2 < o ? B64[v & 63] : '=';
	}
	if (e != n || memcmp(enc, t, n) != 0)
		return -1;
	return (long)o;
}

/* 0 with *id / *secret (malloc'd), or -1. */
static int ref_basic(const char *h, size_t len, char **id, char **secret)
{
	static unsigned char raw[TK_BASIC_HEADER_MAX];
	*id = *secret = NULL;
	if (len > TK_BASIC_HEADER_MAX || len < 6)
		return -1;
	for (size_t i = 0; i < 5; i++)
		if ((h[i] | 0x20) != "basic"[i])
			return -1;
	if (h[5] != ' ')
		return -1;
	size_t p = 5;
	while (p < len && h[p] == ' ')
		p++;
	if (p == len)
		return -1;
	long n = ref_b64(h + p, len - p, raw);
	if (n < 0)
		return -1;
	const unsigned char *colon = memchr(raw, ':', (size_t)n);
	if (!colon || colon == raw)
		return -1;
	size_t il = (size_t)(colon - raw), sl = (size_t)n - il - 1;
	*id = malloc(il + 1);
	*secret = malloc(sl + 1);
	if (!*id || !*secret)
		abort();
	if (fuzz_url_decode((const char *)raw, il, *id, il) < 0 ||
	    fuzz_url_decode((const char *)colon + 1, sl, *secret, sl) < 0) {
		free(*id);
		free(*secret);
		*id = *secret = NULL;
		return -1;
	}
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *h = malloc(size ? size : 1);
	if (!h)
		abort();
	if (size)
		memcpy(h, data, size);

	char *id = (char *)1, *secret = (char *)1, *rid, *rsecret;
	const char *why = (const char *)1;
	int rc = tk_basic_parse(h, size, &id, &secret, &why);
	int rrc = ref_basic(h, size, &rid, &rsecret);

	FUZZ_CHECK(rc == 0 || rc == -1);
	FUZZ_CHECK(rc == rrc);
	if (rc == 0) {
		FUZZ_CHECK(why == NULL);
		FUZZ_CHECK(id != NULL && secret != NULL);
		FUZZ_CHECK(strcmp(id, rid) == 0 && strcmp(secret, rsecret) == 0);
		FUZZ_CHECK(id[0] != '\0' && fuzz_no_ctl(id) && fuzz_no_ctl(secret));
		FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)id, strlen(id)));
		FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)secret, strlen(secret)));
	} else {
		FUZZ_CHECK(id == NULL && secret == NULL);
		FUZZ_CHECK(why != NULL && why[0] != '\0' && fuzz_oauth_text(why));
	}
	tk_basic_free(id, secret);
	free(rid);
	free(rsecret);
	free(h);
	return 0;
}
