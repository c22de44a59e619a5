/*
 * fuzz_keyfmt.c - the small formats of untrusted text (SECURITY A3, A4):
 * key IDs and secrets (tk_key_id_check, tk_secret_check, with a reference
 * model and a checksum-fixing variant so the fuzzer reaches the "well
 * formed" path), scope strings (tk_scopes_parse), durations
 * (tk_duration_parse) and RFC 3339 timestamps (tk_rfc3339_parse), each with
 * a round trip through its formatter.
 */
#include "fuzz.h"

#include <tokend/keyfmt.h>
#include <tokend/scope.h>
#include <tokend/timefmt.h>

static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* CRC-32 bit by bit (an independent implementation of zlib's crc32). */
static uint32_t ref_crc32(const char *p, size_t n)
{
	uint32_t c = 0xffffffffU;
	for (size_t i = 0; i < n; i++) {
		c ^= (unsigned char)p[i];
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0xedb88320U : c >> 1;
	}
	return ~c;
}

static void ref_checksum(const char *p, size_t n, char out[TK_CHECKSUM_LEN])
{
	uint32_t v = ref_crc32(p, n);
	for (int i = TK_CHECKSUM_LEN - 1; i >= 0; i--) {
		out[i] = B62[v % 62];
		v /= 62;
	}
}

/* Any prefix of 2..TK_PREFIX_MAX bytes [a-z][a-z0-9_]*_ before `tail`
 * base62 characters (keyfmt.h). */
static tk_keyfmt_status ref_check(const char *s, size_t len, size_t tail)
{
	char sum[TK_CHECKSUM_LEN];
	if (len < tail + 2 || len > tail + TK_PREFIX_MAX)
		return TK_KEYFMT_LENGTH;
	size_t pl = len - tail;
	if (s[0] < 'a' || s[0] > 'z' || s[pl - 1] != '_')
		return TK_KEYFMT_PREFIX;
	for (size_t i = 1; i < pl; i++)
		if (s[i] == '\0' || strchr("abcdefghijklmnopqrstuvwxyz0123456789_", s[i]) == NULL)
			return TK_KEYFMT_PREFIX;
	for (size_t i = pl; i < len; i++)
		if (s[i] == '\0' || strchr(B62, s[i]) == NULL)
			return TK_KEYFMT_CHARSET;
	ref_checksum(s, len - TK_CHECKSUM_LEN, sum);
	return memcmp(sum, s + len - TK_CHECKSUM_LEN, TK_CHECKSUM_LEN) == 0 ? TK_KEYFMT_OK
	                                                                    : TK_KEYFMT_CHECKSUM;
}

static void keyfmt(const char *s, size_t len)
{
	tk_keyfmt_status a = tk_key_id_check(s, len), b = tk_secret_check(s, len);
	FUZZ_CHECK(a == ref_check(s, len, TK_KEY_ID_RANDOM + TK_CHECKSUM_LEN));
	FUZZ_CHECK(b == ref_check(s, len, TK_SECRET_RANDOM + TK_CHECKSUM_LEN));
	FUZZ_CHECK(tk_keyfmt_strerror(a) != NULL && tk_keyfmt_strerror(b) != NULL);
	FUZZ_CHECK(tk_crc32(s, len) == ref_crc32(s, len));
	if (b == TK_KEYFMT_OK && memchr(s, '\0', len) == NULL) {
		char hint[TK_HINT_LEN + 1], copy[TK_SECRET_MAX + 1];
		memcpy(copy, s, len);
		copy[len] = '\0';
		tk_secret_hint(copy, hint);
		FUZZ_CHECK(strlen(hint) == TK_HINT_LEN &&
		           memcmp(hint, s + len - TK_HINT_LEN, TK_HINT_LEN) == 0);
	}

	/* The same text with its checksum made right (when the length fits): it
	 * is then well formed exactly when prefix and characters are. */
	if (len == TK_KEY_ID_LEN || len == TK_SECRET_LEN) {
		char fixed[TK_SECRET_LEN];
		memcpy(fixed, s, len);
		ref_checksum(fixed, len - TK_CHECKSUM_LEN, fixed + len - TK_CHECKSUM_LEN);
		int id = len == TK_KEY_ID_LEN;
		tk_keyfmt_status st = id ? tk_key_id_check(fixed, len) : tk_secret_check(fixed, len);
		tk_keyfmt_status want = ref_check(fixed, len, (id ? TK_KEY_ID_RANDOM : TK_SECRET_RANDOM) + TK_CHECKSUM_LEN);
		FUZZ_CHECK(want != TK_KEYFMT_CHECKSUM && st == want);
	}
}

static void scopes(const char *s, size_t len)
{
	tk_scopes set, again;
	const char *why = NULL;
	memset(&set, 0, sizeof(set));
	memset(&again, 0, sizeof(again));
	if (tk_scopes_parse(s, len, &set, &why) != 0) {
		FUZZ_CHECK(why != NULL && set.n == 0);
		return;
	}
	FUZZ_CHECK(len <= TK_SCOPE_STRING_MAX && set.n <= TK_SCOPES_MAX);
	/* Joining gives the text back: separators are single spaces. */
	char *joined = tk_scopes_join(&set);
	FUZZ_CHECK(joined != NULL && strlen(joined) == len && memcmp(joined, s, len) == 0);
	free(joined);
	for (size_t i = 0; i < set.n; i++) {
		FUZZ_CHECK(tk_scope_token_valid(set.v[i], strlen(set.v[i])));
		FUZZ_CHECK(tk_scopes_contains(&set, set.v[i]));
		FUZZ_CHECK(tk_scopes_add(&again, set.v[i], strlen(set.v[i]), &why) == 0);
		/* A second add of the same token is a duplicate. */
		FUZZ_CHECK(tk_scopes_add(&again, set.v[i], strlen(set.v[i]), &why) != 0);
	}
	FUZZ_CHECK(again.n == set.n && tk_scopes_subset(&set, &again) && tk_scopes_subset(&again, &set));
	tk_scopes_free(&set);
	tk_scopes_free(&again);
}

static void times(const char *cstr)
{
	int64_t secs = -1, epoch = -1, back = -1;
	const char *why = NULL;
	char out[32];

	if (tk_duration_parse(cstr, &secs, &why) == 0) {
		FUZZ_CHECK(secs >= 1 && secs <= (int64_t)36525 * 86400);
		tk_duration_format(secs, out);
		FUZZ_CHECK(memchr(out, '\0', sizeof(out)) != NULL);
		FUZZ_CHECK(tk_duration_parse(out, &back, &why) == 0 && back == secs);
	} else {
		FUZZ_CHECK(why != NULL);
	}

	if (tk_rfc3339_parse(cstr, &epoch, &why) == 0) {
		tk_rfc3339_format(epoch, out);
		FUZZ_CHECK(memchr(out, '\0', sizeof(out)) != NULL);
		/* Years 0000..9999 format back into something that parses to the
		 * same instant (a leap second :60 becomes :00 of the next minute). */
		if (epoch >= -62167219200LL && epoch <= 253402300799LL)
			FUZZ_CHECK(tk_rfc3339_parse(out, &back, &why) == 0 && back == epoch);
	} else {
		FUZZ_CHECK(why != NULL && epoch == 0);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);   /* exact size + NUL, for ASan */
	keyfmt(s, size);
	scopes(s, size);
	times(s);                          /* C-string parsers: up to the first NUL */
	free(s);
	return 0;
}
