/* test_keyfmt.c - key ID / secret generation and checking, CRC-32. */
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>

#include "tokend/crypto.h"
#include "tokend/keyfmt.h"

static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int is_b62(char c)
{
	return c != '\0' && strchr(B62, c) != NULL;
}

/* Bit-at-a-time CRC-32, to check the table-driven one against. */
static uint32_t crc32_ref(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffU;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c & 1U) ? (c >> 1) ^ 0xEDB88320U : c >> 1;
	}
	return ~c;
}

/* Checksum suffix for s[0..n), as the library writes it. */
static void checksum_for(const char *s, size_t n, char out[TK_CHECKSUM_LEN])
{
	uint32_t v = tk_crc32(s, n);
	for (int i = TK_CHECKSUM_LEN - 1; i >= 0; i--) {
		out[i] = B62[v % 62];
		v /= 62;
	}
}

static void test_crc32(void)
{
	TEST_ASSERT(tk_crc32("", 0) == 0);
	TEST_ASSERT(tk_crc32(NULL, 0) == 0);
	TEST_ASSERT(tk_crc32("123456789", 9) == 0xCBF43926U);
	TEST_ASSERT(tk_crc32("The quick brown fox jumps over the lazy dog", 43) == 0x414FA339U);
	TEST_ASSERT(tk_crc32("a", 1) == 0xE8B7BE43U);

	unsigned char buf[300];
	int mismatches = 0;
	for (int round = 0; round < 200; round++) {
		size_t n = (size_t)round + 1;
		TEST_ASSERT(tk_random_bytes(buf, n) == 0);
		if (tk_crc32(buf, n) != crc32_ref(buf, n))
			mismatches++;
	}
	TEST_ASSERT(mismatches == 0);
}

static void test_generate_shape(void)
{
	int bad = 0;
	for (int i = 0; i < 2000; i++) {
		char id[TK_KEY_ID_LEN + 1], sec[TK_SECRET_LEN + 1];
		memset(id, 'x', sizeof(id));
		memset(sec, 'x', sizeof(sec));
		if (tk_key_id_generate(id) != TK_KEYFMT_OK || tk_secret_generate(sec) != TK_KEYFMT_OK) {
			bad++;
			continue;
		}
		if (strlen(id) != TK_KEY_ID_LEN || strlen(sec) != TK_SECRET_LEN)
			bad++;
		if (memcmp(id, "tk_", 3) != 0 || memcmp(sec, "tks_", 4) != 0)
			bad++;
		for (size_t k = 3; k < TK_KEY_ID_LEN; k++)
			if (!is_b62(id[k]))
				bad++;
		for (size_t k = 4; k < TK_SECRET_LEN; k++)
			if (!is_b62(sec[k]))
				bad++;
		if (tk_key_id_check(id, strlen(id)) != TK_KEYFMT_OK)
			bad++;
		if (tk_secret_check(sec, strlen(sec)) != TK_KEYFMT_OK)
			bad++;
		/* Each kind is refused by the other's checker. */
		if (tk_secret_check(id, strlen(id)) == TK_KEYFMT_OK)
			bad++;
		if (tk_key_id_check(sec, strlen(sec)) == TK_KEYFMT_OK)
			bad++;
	}
	TEST_ASSERT(bad == 0);
	TEST_ASSERT(TK_KEY_ID_LEN == 31 && TK_SECRET_LEN == 53);
}

/* The checker must not read past len: check a copy in an exactly sized heap
 * block (ASan reports any overread), with no NUL terminator. */
static void test_no_overread(void)
{
	char sec[TK_SECRET_LEN + 1], id[TK_KEY_ID_LEN + 1];
	TEST_ASSERT(tk_secret_generate(sec) == TK_KEYFMT_OK);
	TEST_ASSERT(tk_key_id_generate(id) == TK_KEYFMT_OK);

	char *h = malloc(TK_SECRET_LEN);
	TEST_ASSERT(h != NULL);
	if (h == NULL)
		return;
	memcpy(h, sec, TK_SECRET_LEN);
	TEST_ASSERT(tk_secret_check(h, TK_SECRET_LEN) == TK_KEYFMT_OK);
	TEST_ASSERT(tk_secret_check(h, 10) == TK_KEYFMT_LENGTH);
	TEST_ASSERT(tk_key_id_check(h, TK_SECRET_LEN) == TK_KEYFMT_LENGTH);
	free(h);

	char *k = malloc(TK_KEY_ID_LEN);
	TEST_ASSERT(k != NULL);
	if (k == NULL)
		return;
	memcpy(k, id, TK_KEY_ID_LEN);
	TEST_ASSERT(tk_key_id_check(k, TK_KEY_ID_LEN) == TK_KEYFMT_OK);
	free(k);

	/* A short buffer whose declared length is also short. */
	char *tiny = malloc(2);
	TEST_ASSERT(tiny != NULL);
	if (tiny == NULL)
		return;
	memcpy(tiny, "tk", 2);
	TEST_ASSERT(tk_key_id_check(tiny, 2) == TK_KEYFMT_LENGTH);
	TEST_ASSERT(tk_secret_check(tiny, 2) == TK_KEYFMT_LENGTH);
	free(tiny);

	TEST_ASSERT(tk_secret_check(NULL, 0) == TK_KEYFMT_LENGTH);
	TEST_ASSERT(tk_key_id_check(NULL, TK_KEY_ID_LEN) == TK_KEYFMT_LENGTH);
	TEST_ASSERT(tk_secret_check("", 0) == TK_KEYFMT_LENGTH);
}

/* Every single-byte substitution (all 255 other byte values) at every
 * position, and every adjacent transposition that changes the string. */
static void typo_sweep(int secret, int rounds)
{
	size_t len = secret ? TK_SECRET_LEN : TK_KEY_ID_LEN;
	size_t plen = secret ? 4 : 3;
	long subs = 0, subs_rejected = 0, b62_subs = 0, b62_checksum = 0;
	long swaps = 0, swaps_rejected = 0;

	for (int r = 0; r < rounds; r++) {
		char s[TK_SECRET_LEN + 1];
		tk_keyfmt_status st = secret ? tk_secret_generate(s) : tk_key_id_generate(s);
		TEST_ASSERT(st == TK_KEYFMT_OK);
		if (st != TK_KEYFMT_OK)
			return;
		tk_keyfmt_status (*check)(const char *, size_t) =
			secret ? tk_secret_check : tk_key_id_check;

		for (size_t pos = 0; pos < len; pos++) {
			char orig = s[pos];
			for (int b = 0; b < 256; b++) {
				if ((char)b == orig)
					continue;
				s[pos] = (char)b;
				tk_keyfmt_status cs = check(s, len);
				subs++;
				if (cs != TK_KEYFMT_OK)
					subs_rejected++;
				/* A base62-for-base62 swap past the prefix is caught by
				 * the checksum itself, not by anything cruder. */
				if (pos >= plen && is_b62((char)b)) {
					b62_subs++;
					if (cs == TK_KEYFMT_CHECKSUM)
						b62_checksum++;
				}
			}
			s[pos] = orig;
		}
		for (size_t pos = 0; pos + 1 < len; pos++) {
			if (s[pos] == s[pos + 1])
				continue;
			char t = s[pos];
			s[pos] = s[pos + 1];
			s[pos + 1] = t;
			swaps++;
			if (check(s, len) != TK_KEYFMT_OK)
				swaps_rejected++;
			s[pos + 1] = s[pos];
			s[pos] = t;
		}
		TEST_ASSERT(check(s, len) == TK_KEYFMT_OK); /* restored intact */
	}
	fprintf(stderr, "   %s: %ld/%ld substitutions rejected (%ld/%ld base62 ones by checksum), "
	        "%ld/%ld transpositions rejected\n", secret ? "secrets" : "key IDs",
	        subs_rejected, subs, b62_checksum, b62_subs, swaps_rejected, swaps);
	TEST_ASSERT(subs == (long)rounds * (long)len * 255);
	TEST_ASSERT(subs_rejected == subs);
	TEST_ASSERT(b62_subs > 0 && b62_checksum == b62_subs);
	TEST_ASSERT(swaps > 0 && swaps_rejected == swaps);
}

static void test_typos(void)
{
	typo_sweep(1, 40);
	typo_sweep(0, 40);
}

/* Configured prefixes: generation, validation, lengths, one checker for all. */
static void test_prefixes(void)
{
	char id[TK_KEY_ID_MAX + 1], sec[TK_SECRET_MAX + 1];
	TEST_ASSERT(tk_prefix_valid("tk_") && tk_prefix_valid("ms_live_") && tk_prefix_valid("a_"));
	TEST_ASSERT(tk_prefix_valid("abcdefghijklmno_"));                       /* 16 */
	TEST_ASSERT(!tk_prefix_valid("abcdefghijklmnop_"));                     /* 17 */
	TEST_ASSERT(!tk_prefix_valid(NULL) && !tk_prefix_valid("") && !tk_prefix_valid("_") &&
	            !tk_prefix_valid("tk") && !tk_prefix_valid("Tk_") && !tk_prefix_valid("9k_") &&
	            !tk_prefix_valid("t-k_") && !tk_prefix_valid("t k_") && !tk_prefix_valid("tk\n_"));
	TEST_ASSERT(tk_key_id_generate_prefixed("ms_live_", id) == TK_KEYFMT_OK);
	TEST_ASSERT(strncmp(id, "ms_live_", 8) == 0 && strlen(id) == 8 + 28);
	TEST_ASSERT(tk_key_id_check(id, strlen(id)) == TK_KEYFMT_OK);
	TEST_ASSERT(tk_secret_check(id, strlen(id)) != TK_KEYFMT_OK);
	TEST_ASSERT(tk_secret_generate_prefixed("ms_sk_", sec) == TK_KEYFMT_OK);
	TEST_ASSERT(strncmp(sec, "ms_sk_", 6) == 0 && strlen(sec) == 6 + 49);
	TEST_ASSERT(tk_secret_check(sec, strlen(sec)) == TK_KEYFMT_OK);
	TEST_ASSERT(tk_key_id_check(sec, strlen(sec)) != TK_KEYFMT_OK);
	char hint[TK_HINT_LEN + 1];
	tk_secret_hint(sec, hint);
	TEST_ASSERT(strlen(hint) == 4 && memcmp(hint, sec + strlen(sec) - 4, 4) == 0);
	TEST_ASSERT(tk_key_id_generate_prefixed("abcdefghijklmno_", id) == TK_KEYFMT_OK && strlen(id) == TK_KEY_ID_MAX);
	TEST_ASSERT(tk_secret_generate_prefixed("abcdefghijklmno_", sec) == TK_KEYFMT_OK && strlen(sec) == TK_SECRET_MAX);
	TEST_ASSERT(tk_key_id_generate_prefixed("Bad", id) == TK_KEYFMT_PREFIX && id[0] == '\0');
	TEST_ASSERT(tk_secret_generate_prefixed("abcdefghijklmnop_", sec) == TK_KEYFMT_PREFIX && sec[0] == '\0');
	TEST_ASSERT(tk_key_id_generate_prefixed(NULL, id) == TK_KEYFMT_OK && strncmp(id, "tk_", 3) == 0 &&
	            strlen(id) == TK_KEY_ID_LEN);
	/* A typo in the prefix is caught by the checksum. */
	TEST_ASSERT(tk_key_id_generate_prefixed("ms_live_", id) == TK_KEYFMT_OK);
	id[3] = 'j';
	TEST_ASSERT(tk_key_id_check(id, strlen(id)) == TK_KEYFMT_CHECKSUM);
}

/* Every byte at a body position and at a checksum position: refused for
 * its charset exactly when it is not a base62 digit (a table decides it: a
 * wrong entry would let a byte through or refuse a digit), and at the
 * checksum position accepted only as the digit that was there (each digit's
 * value is its own). */
static void test_every_byte(void)
{
	static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	char id[TK_KEY_ID_LEN + 1], buf[TK_KEY_ID_LEN + 1];
	TEST_ASSERT(tk_key_id_generate(id) == TK_KEYFMT_OK);
	const size_t at[2] = { TK_KEY_ID_LEN - TK_CHECKSUM_LEN - 1, TK_KEY_ID_LEN - 1 };
	int wrong = 0, accepted = 0;
	for (int b = 0; b < 256; b++) {
		int digit = b != 0 && strchr(digits, b) != NULL;
		for (int i = 0; i < 2; i++) {
			memcpy(buf, id, sizeof(buf));
			buf[at[i]] = (char)b;
			tk_keyfmt_status st = tk_key_id_check(buf, TK_KEY_ID_LEN);
			wrong += digit ? st == TK_KEYFMT_CHARSET : st != TK_KEYFMT_CHARSET;
			if (st == TK_KEYFMT_OK) {
				accepted++;
				wrong += b != (unsigned char)id[at[i]];
			}
		}
	}
	TEST_ASSERT(wrong == 0);
	TEST_ASSERT(accepted >= 1);      /* the checksum position's own digit, at least */
}

static void test_hostile(void)
{
	char sec[TK_SECRET_LEN + 1], id[TK_KEY_ID_LEN + 1], buf[TK_SECRET_LEN + 8];
	TEST_ASSERT(tk_secret_generate(sec) == TK_KEYFMT_OK);
	TEST_ASSERT(tk_key_id_generate(id) == TK_KEYFMT_OK);

	/* Length +-1: the prefix boundary moves, so the prefix no longer ends in
	 * '_' (or holds a body character): refused as a prefix. */
	TEST_ASSERT(tk_secret_check(sec, TK_SECRET_LEN - 1) == TK_KEYFMT_PREFIX);
	memcpy(buf, sec, TK_SECRET_LEN);
	buf[TK_SECRET_LEN] = 'A';
	TEST_ASSERT(tk_secret_check(buf, TK_SECRET_LEN + 1) == TK_KEYFMT_PREFIX);
	TEST_ASSERT(tk_secret_check(sec, TK_SECRET_LEN + 1) == TK_KEYFMT_PREFIX); /* incl. NUL */
	TEST_ASSERT(tk_key_id_check(id, TK_KEY_ID_LEN - 1) == TK_KEYFMT_PREFIX);
	TEST_ASSERT(tk_key_id_check(id, TK_KEY_ID_LEN + 1) == TK_KEYFMT_PREFIX);
	/* Too short or long for any prefix. */
	TEST_ASSERT(tk_key_id_check(id + 2, TK_KEY_ID_LEN - 2) == TK_KEYFMT_LENGTH);
	TEST_ASSERT(tk_secret_check(sec, TK_SECRET_MAX + 1) == TK_KEYFMT_LENGTH);

	/* A key ID where a secret is expected, and vice versa. */
	TEST_ASSERT(tk_secret_check(id, strlen(id)) == TK_KEYFMT_LENGTH);
	TEST_ASSERT(tk_key_id_check(sec, strlen(sec)) == TK_KEYFMT_LENGTH);

	/* Another valid prefix with a checksum over it: accepted (a key made
	 * under an earlier configured prefix keeps working); the same string
	 * with the old checksum is refused (the checksum covers the prefix). */
	memcpy(buf, sec, TK_SECRET_LEN + 1);
	memcpy(buf, "tkx_", 4);
	TEST_ASSERT(tk_secret_check(buf, TK_SECRET_LEN) == TK_KEYFMT_CHECKSUM);
	checksum_for(buf, TK_SECRET_LEN - TK_CHECKSUM_LEN, buf + TK_SECRET_LEN - TK_CHECKSUM_LEN);
	TEST_ASSERT(tk_secret_check(buf, TK_SECRET_LEN) == TK_KEYFMT_OK);
	memcpy(buf, "tk-_", 4);
	checksum_for(buf, TK_SECRET_LEN - TK_CHECKSUM_LEN, buf + TK_SECRET_LEN - TK_CHECKSUM_LEN);
	TEST_ASSERT(tk_secret_check(buf, TK_SECRET_LEN) == TK_KEYFMT_PREFIX);
	memcpy(buf, "1ks_", 4);
	checksum_for(buf, TK_SECRET_LEN - TK_CHECKSUM_LEN, buf + TK_SECRET_LEN - TK_CHECKSUM_LEN);
	TEST_ASSERT(tk_secret_check(buf, TK_SECRET_LEN) == TK_KEYFMT_PREFIX);
	/* "tk_" + 50 chars: a key-ID-prefixed string of secret length. */
	memcpy(buf, "tk_A", 4);
	checksum_for(buf, TK_SECRET_LEN - TK_CHECKSUM_LEN, buf + TK_SECRET_LEN - TK_CHECKSUM_LEN);
	TEST_ASSERT(tk_secret_check(buf, TK_SECRET_LEN) == TK_KEYFMT_PREFIX);
	/* "tks_" + 27 chars: a secret-prefixed string of key-ID length. */
	memcpy(buf, "tks_", 4);
	memcpy(buf + 4, id + 4, TK_KEY_ID_LEN - 4);
	checksum_for(buf, TK_KEY_ID_LEN - TK_CHECKSUM_LEN, buf + TK_KEY_ID_LEN - TK_CHECKSUM_LEN);
	TEST_ASSERT(tk_key_id_check(buf, TK_KEY_ID_LEN) == TK_KEYFMT_PREFIX);
	/* Upper-case prefix. */
	memcpy(buf, sec, TK_SECRET_LEN + 1);
	memcpy(buf, "TKS_", 4);
	TEST_ASSERT(tk_secret_check(buf, TK_SECRET_LEN) == TK_KEYFMT_PREFIX);

	/* NUL bytes inside, in the body and in the checksum. */
	memcpy(buf, sec, TK_SECRET_LEN + 1);
	buf[20] = '\0';
	TEST_ASSERT(tk_secret_check(buf, TK_SECRET_LEN) == TK_KEYFMT_CHARSET);
	memcpy(buf, sec, TK_SECRET_LEN + 1);
	buf[TK_SECRET_LEN - 1] = '\0';
	TEST_ASSERT(tk_secret_check(buf, TK_SECRET_LEN) == TK_KEYFMT_CHARSET);
	memcpy(buf, sec, TK_SECRET_LEN + 1);
	buf[3] = '\0';
	TEST_ASSERT(tk_secret_check(buf, TK_SECRET_LEN) == TK_KEYFMT_PREFIX);

	/* Non-ASCII: UTF-8 'é' replacing two body characters, and 0xFF. */
	memcpy(buf, sec, TK_SECRET_LEN + 1);
	buf[10] = (char)0xC3;
	buf[11] = (char)0xA9;
	TEST_ASSERT(tk_secret_check(buf, TK_SECRET_LEN) == TK_KEYFMT_CHARSET);
	memcpy(buf, sec, TK_SECRET_LEN + 1);
	buf[TK_SECRET_LEN - 3] = (char)0xFF;
	TEST_ASSERT(tk_secret_check(buf, TK_SECRET_LEN) == TK_KEYFMT_CHARSET);

	/* Base64-ish characters and whitespace. */
	const char *bad = "-_+/= \t\n.";
	for (const char *c = bad; *c; c++) {
		memcpy(buf, sec, TK_SECRET_LEN + 1);
		buf[30] = *c;
		TEST_ASSERT(tk_secret_check(buf, TK_SECRET_LEN) == TK_KEYFMT_CHARSET);
	}

	/* A checksum that decodes to a value >= 2^32 ("zzzzzz") never matches. */
	memcpy(buf, sec, TK_SECRET_LEN + 1);
	memcpy(buf + TK_SECRET_LEN - TK_CHECKSUM_LEN, "zzzzzz", 6);
	TEST_ASSERT(tk_secret_check(buf, TK_SECRET_LEN) == TK_KEYFMT_CHECKSUM);

	/* Random correctly-prefixed base62 strings essentially never pass
	 * (the chance is about 2^-32 each). */
	unsigned char rnd[TK_SECRET_LEN];
	int passed = 0, rfail = 0;
	for (int i = 0; i < 100000; i++) {
		if (tk_random_bytes(rnd, sizeof(rnd)) != 0)
			rfail++;
		memcpy(buf, "tks_", 4);
		for (size_t k = 4; k < TK_SECRET_LEN; k++)
			buf[k] = B62[rnd[k] % 62];
		if (tk_secret_check(buf, TK_SECRET_LEN) == TK_KEYFMT_OK)
			passed++;
	}
	TEST_ASSERT(rfail == 0);
	TEST_ASSERT(passed == 0);
}

static int cmp_ids(const void *a, const void *b)
{
	return memcmp(a, b, TK_KEY_ID_LEN);
}

static void test_unique(void)
{
	enum { N = 10000 };
	char (*ids)[TK_KEY_ID_LEN + 1] = calloc(N, sizeof(*ids));
	TEST_ASSERT(ids != NULL);
	if (ids == NULL)
		return;
	int failed = 0;
	for (int i = 0; i < N; i++)
		if (tk_key_id_generate(ids[i]) != TK_KEYFMT_OK)
			failed++;
	TEST_ASSERT(failed == 0);
	qsort(ids, N, sizeof(*ids), cmp_ids);
	int dups = 0;
	for (int i = 1; i < N; i++)
		if (memcmp(ids[i - 1], ids[i], TK_KEY_ID_LEN) == 0)
			dups++;
	TEST_ASSERT(dups == 0);
	free(ids);
}

/* The body characters must be uniform: a chi-square test over 62 bins.
 * Plain b % 62 without rejection would make '0'..'7' 25% more likely and
 * push the statistic into the hundreds. */
static void test_uniform(void)
{
	long count[62] = { 0 };
	long total = 0;
	for (int i = 0; i < 3000; i++) {
		char s[TK_SECRET_LEN + 1];
		TEST_ASSERT(tk_secret_generate(s) == TK_KEYFMT_OK);
		for (size_t k = 4; k < 4 + TK_SECRET_RANDOM; k++) {
			const char *p = strchr(B62, s[k]);
			if (p != NULL) {
				count[p - B62]++;
				total++;
			}
		}
	}
	double expect = (double)total / 62.0, chi2 = 0;
	for (int k = 0; k < 62; k++)
		chi2 += ((double)count[k] - expect) * ((double)count[k] - expect) / expect;
	fprintf(stderr, "   chi-square over %ld chars, 61 dof: %.1f\n", total, chi2);
	TEST_ASSERT(total == 3000L * TK_SECRET_RANDOM);
	TEST_ASSERT(chi2 < 150.0); /* p ~ 1e-8 for 61 dof */
}

static void test_hint(void)
{
	char sec[TK_SECRET_LEN + 1], hint[TK_HINT_LEN + 1];
	TEST_ASSERT(tk_secret_generate(sec) == TK_KEYFMT_OK);
	memset(hint, 'x', sizeof(hint));
	tk_secret_hint(sec, hint);
	TEST_ASSERT(strlen(hint) == TK_HINT_LEN);
	TEST_ASSERT(memcmp(hint, sec + TK_SECRET_LEN - 4, 4) == 0);
	/* The hint lies wholly within the checksum. */
	TEST_ASSERT(TK_HINT_LEN <= TK_CHECKSUM_LEN);

	memset(hint, 'x', sizeof(hint));
	tk_secret_hint("tks_short", hint);
	TEST_ASSERT_STR(hint, "");
	memset(hint, 'x', sizeof(hint));
	tk_secret_hint(NULL, hint);
	TEST_ASSERT_STR(hint, "");
}

static void test_random_failure(void)
{
	char sec[TK_SECRET_LEN + 1], id[TK_KEY_ID_LEN + 1];

	memset(sec, 'x', sizeof(sec));
	tk_random_fail_for_testing(1);
	TEST_ASSERT(tk_secret_generate(sec) == TK_KEYFMT_RANDOM);
	TEST_ASSERT(sec[0] == '\0');
	int nonzero = 0;
	for (size_t i = 0; i < sizeof(sec); i++)
		if (sec[i] != '\0')
			nonzero++;
	TEST_ASSERT(nonzero == 0);

	memset(id, 'x', sizeof(id));
	tk_random_fail_for_testing(1);
	TEST_ASSERT(tk_key_id_generate(id) == TK_KEYFMT_RANDOM);
	TEST_ASSERT_STR(id, "");

	/* The hook is used up: the next call works. */
	TEST_ASSERT(tk_secret_generate(sec) == TK_KEYFMT_OK);
	TEST_ASSERT(tk_secret_check(sec, strlen(sec)) == TK_KEYFMT_OK);
}

static void test_strerror(void)
{
	for (int st = TK_KEYFMT_OK; st <= TK_KEYFMT_RANDOM; st++) {
		const char *m = tk_keyfmt_strerror((tk_keyfmt_status)st);
		TEST_ASSERT(m != NULL && m[0] != '\0');
	}
	TEST_ASSERT(tk_keyfmt_strerror((tk_keyfmt_status)99) != NULL);
	TEST_ASSERT(strcmp(tk_keyfmt_strerror(TK_KEYFMT_CHECKSUM),
	                   tk_keyfmt_strerror(TK_KEYFMT_LENGTH)) != 0);
}

int main(void)
{
	TEST_RUN(test_crc32);
	TEST_RUN(test_generate_shape);
	TEST_RUN(test_no_overread);
	TEST_RUN(test_typos);
	TEST_RUN(test_hostile);
	TEST_RUN(test_every_byte);
	TEST_RUN(test_prefixes);
	TEST_RUN(test_unique);
	TEST_RUN(test_uniform);
	TEST_RUN(test_hint);
	TEST_RUN(test_random_failure);
	TEST_RUN(test_strerror);
	TEST_DONE();
}
