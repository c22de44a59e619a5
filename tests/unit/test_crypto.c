/* test_crypto.c - HMAC hasher, digest comparison, pepper decoding,
 * randomness and its failure hook, wiping, base64url. */
#include "unit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "tokend/crypto.h"
#include "tokend/keyfmt.h"

static int hex_to_bytes(const char *hex, unsigned char *out, size_t cap)
{
	size_t n = strlen(hex);
	if (n % 2 != 0 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return (int)(n / 2);
}

static int all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

/* Check h(msg) against an expected hex digest. */
static int hash_is(tk_hasher *h, const char *msg, size_t len, const char *expect_hex)
{
	unsigned char got[TK_HASH_LEN], want[TK_HASH_LEN];
	if (hex_to_bytes(expect_hex, want, sizeof(want)) != TK_HASH_LEN)
		return 0;
	if (tk_hasher_hash(h, msg, len, got) != 0)
		return 0;
	return memcmp(got, want, TK_HASH_LEN) == 0;
}

/*
 * RFC 4231 test cases 6 and 7 use a 131-byte key of 0xaa. HMAC replaces a key
 * longer than the block size by its hash, so HMAC(SHA256(key), m) gives the
 * same published values with a 32-byte key that tk_hasher accepts.
 * SHA256(0xaa x 131) = 45ad4b37...21db81 (openssl dgst -sha256).
 */
static void test_hmac_kat(void)
{
	unsigned char key[64];
	TEST_ASSERT(hex_to_bytes("45ad4b37c6e2fc0a2cfcc1b5da524132ec707615c2cae1dbbc43c97aa521db81",
	                         key, sizeof(key)) == 32);
	tk_hasher *h = tk_hasher_new(key, 32);
	TEST_ASSERT(h != NULL);
	if (h == NULL)
		return;
	static const char tc6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
	static const char tc7[] =
		"This is a test using a larger than block-size key and a larger than block-size "
		"data. The key needs to be hashed before being used by the HMAC algorithm.";
	const char *e6 = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";
	const char *e7 = "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2";
	TEST_ASSERT(hash_is(h, tc6, strlen(tc6), e6));
	TEST_ASSERT(hash_is(h, tc7, strlen(tc7), e7));
	/* Re-use of the keyed context: order and repetition do not matter. */
	TEST_ASSERT(hash_is(h, tc6, strlen(tc6), e6));
	TEST_ASSERT(hash_is(h, tc7, strlen(tc7), e7));
	TEST_ASSERT(hash_is(h, tc6, strlen(tc6), e6));
	tk_hasher_free(h);

	/* A 64-byte key 00..3f; values from
	 * openssl dgst -sha256 -mac HMAC -macopt hexkey:000102...3f */
	for (int i = 0; i < 64; i++)
		key[i] = (unsigned char)i;
	h = tk_hasher_new(key, 64);
	TEST_ASSERT(h != NULL);
	if (h == NULL)
		return;
	TEST_ASSERT(hash_is(h, "tks_example", 11,
	                    "a2dba48e8c0b98b0eaba449e46f9f7a97e38ac947a9d5974b0e913282c2bc5b9"));
	TEST_ASSERT(hash_is(h, "", 0,
	                    "3499f163f48604c0b15ac89e4e7c66f314fb3b203b8ac2f564828e62f6be9d9d"));
	TEST_ASSERT(hash_is(h, NULL, 0,
	                    "3499f163f48604c0b15ac89e4e7c66f314fb3b203b8ac2f564828e62f6be9d9d"));
	TEST_ASSERT(hash_is(h, "tks_example", 11,
	                    "a2dba48e8c0b98b0eaba449e46f9f7a97e38ac947a9d5974b0e913282c2bc5b9"));
	tk_hasher_free(h);
}

static void test_hasher_limits(void)
{
	unsigned char key[TK_PEPPER_MAX + 1], out[TK_HASH_LEN];
	memset(key, 0x5a, sizeof(key));
	TEST_ASSERT(tk_hasher_new(key, TK_PEPPER_MIN - 1) == NULL);
	TEST_ASSERT(tk_hasher_new(key, TK_PEPPER_MAX + 1) == NULL);
	TEST_ASSERT(tk_hasher_new(NULL, 32) == NULL);
	TEST_ASSERT(tk_hasher_new(key, 0) == NULL);
	tk_hasher *h = tk_hasher_new(key, TK_PEPPER_MIN);
	TEST_ASSERT(h != NULL);
	tk_hasher_free(h);
	h = tk_hasher_new(key, TK_PEPPER_MAX);
	TEST_ASSERT(h != NULL);

	memset(out, 0xee, sizeof(out));
	TEST_ASSERT(tk_hasher_hash(NULL, "x", 1, out) == -1);
	TEST_ASSERT(all_zero(out, sizeof(out)));
	memset(out, 0xee, sizeof(out));
	TEST_ASSERT(tk_hasher_hash(h, NULL, 5, out) == -1);
	TEST_ASSERT(all_zero(out, sizeof(out)));

	/* Different peppers give different digests of the same secret. */
	unsigned char a[TK_HASH_LEN], b[TK_HASH_LEN];
	tk_hasher *h2 = tk_hasher_new(key, TK_PEPPER_MAX - 1);
	TEST_ASSERT(h2 != NULL);
	TEST_ASSERT(tk_hasher_hash(h, "tks_x", 5, a) == 0);
	TEST_ASSERT(h2 != NULL && tk_hasher_hash(h2, "tks_x", 5, b) == 0);
	TEST_ASSERT(!tk_digest_equal(a, b));
	tk_hasher_free(h2);
	tk_hasher_free(h);
	tk_hasher_free(NULL);
}

static void test_digest_equal(void)
{
	unsigned char a[TK_HASH_LEN], b[TK_HASH_LEN];
	TEST_ASSERT(tk_random_bytes(a, sizeof(a)) == 0);
	memcpy(b, a, sizeof(a));
	TEST_ASSERT(tk_digest_equal(a, b) == 1);
	b[0] ^= 1;
	TEST_ASSERT(tk_digest_equal(a, b) == 0);
	b[0] ^= 1;
	b[TK_HASH_LEN - 1] ^= 0x80;
	TEST_ASSERT(tk_digest_equal(a, b) == 0);
	b[TK_HASH_LEN - 1] ^= 0x80;
	TEST_ASSERT(tk_digest_equal(a, b) == 1);
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	TEST_ASSERT(tk_digest_equal(a, b) == 1);
}

/* Standard padded base64 of p[0..n) into out. */
static void b64std(const unsigned char *p, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

static void strip_pad(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '=')
		s[--n] = '\0';
}

static void to_url(char *s)
{
	for (; *s; s++) {
		if (*s == '+')
			*s = '-';
		else if (*s == '/')
			*s = '_';
	}
}

/* Decode `text`; expect success with exactly `want`, n bytes. */
static int pepper_ok(const char *text, const unsigned char *want, size_t n)
{
	unsigned char out[TK_PEPPER_MAX];
	size_t len = 0;
	const char *why = "unset";
	if (tk_pepper_decode(text, out, &len, &why) != 0) {
		fprintf(stderr, "   unexpected refusal of \"%s\": %s\n", text, why ? why : "?");
		return 0;
	}
	return len == n && memcmp(out, want, n) == 0;
}

/* Expect refusal with a reason and a wiped output buffer. */
static int pepper_refused(const char *text)
{
	unsigned char out[TK_PEPPER_MAX];
	size_t len = 99;
	const char *why = NULL;
	memset(out, 0xAA, sizeof(out));
	if (tk_pepper_decode(text, out, &len, &why) != -1)
		return 0;
	return why != NULL && why[0] != '\0' && len == 0 && all_zero(out, sizeof(out));
}

static void test_pepper(void)
{
	unsigned char raw[80];
	char text[300], hex[300];

	/* A random 32-byte pepper in every accepted spelling. */
	TEST_ASSERT(tk_random_bytes(raw, sizeof(raw)) == 0);
	b64std(raw, 32, text);
	TEST_ASSERT(strlen(text) == 44 && text[43] == '=');
	TEST_ASSERT(pepper_ok(text, raw, 32));
	strip_pad(text);
	TEST_ASSERT(pepper_ok(text, raw, 32));
	b64std(raw, 32, text);
	to_url(text);
	TEST_ASSERT(pepper_ok(text, raw, 32));
	strip_pad(text);
	TEST_ASSERT(pepper_ok(text, raw, 32));

	strcpy(hex, "hex:");
	for (int i = 0; i < 32; i++)
		sprintf(hex + 4 + 2 * i, "%02x", raw[i]);
	TEST_ASSERT(pepper_ok(hex, raw, 32));
	strcpy(hex, "hex:");
	for (int i = 0; i < 32; i++)
		sprintf(hex + 4 + 2 * i, "%02X", raw[i]);
	TEST_ASSERT(pepper_ok(hex, raw, 32));

	/* Sizes: 31 refused, 32 and 64 accepted, 65 refused. */
	b64std(raw, 31, text);
	TEST_ASSERT(pepper_refused(text));
	b64std(raw, 33, text);
	TEST_ASSERT(pepper_ok(text, raw, 33));
	b64std(raw, 64, text);
	TEST_ASSERT(pepper_ok(text, raw, 64));
	b64std(raw, 65, text);
	TEST_ASSERT(pepper_refused(text));
	b64std(raw, 80, text);
	TEST_ASSERT(pepper_refused(text));
	strcpy(hex, "hex:");
	for (int i = 0; i < 31; i++)
		sprintf(hex + 4 + 2 * i, "%02x", raw[i]);
	TEST_ASSERT(pepper_refused(hex));
	strcpy(hex, "hex:");
	for (int i = 0; i < 65; i++)
		sprintf(hex + 4 + 2 * i, "%02x", raw[i]);
	TEST_ASSERT(pepper_refused(hex));

	/* Visibly not random. */
	unsigned char weak[32] = { 0 };
	b64std(weak, 32, text);
	TEST_ASSERT(pepper_refused(text)); /* all zero */
	memset(weak, 'a', sizeof(weak));
	b64std(weak, 32, text);
	TEST_ASSERT(pepper_refused(text));
	for (int i = 0; i < 32; i++)
		weak[i] = (unsigned char)(i % 15); /* 15 distinct values */
	b64std(weak, 32, text);
	TEST_ASSERT(pepper_refused(text));
	for (int i = 0; i < 32; i++)
		weak[i] = (unsigned char)(i % 16); /* 16 distinct values: the floor */
	b64std(weak, 32, text);
	TEST_ASSERT(pepper_ok(text, weak, 32));
	/* A 32-character ASCII passphrase is base64 of 24 bytes: too short. */
	TEST_ASSERT(pepper_refused("correcthorsebatterystaplecorrect"));

	/* Garbage. */
	TEST_ASSERT(pepper_refused(NULL));
	TEST_ASSERT(pepper_refused(""));
	TEST_ASSERT(pepper_refused("hex:"));
	TEST_ASSERT(pepper_refused("not base64 at all, but long enough to be a pepper!!!!!!"));
	b64std(raw, 32, text);
	text[10] = '!';
	TEST_ASSERT(pepper_refused(text));
	b64std(raw, 32, text);
	text[10] = '=';
	TEST_ASSERT(pepper_refused(text)); /* padding in the middle */
	b64std(raw, 32, text);
	strcat(text, "=");
	TEST_ASSERT(pepper_refused(text)); /* too much padding */
	b64std(raw, 33, text);          /* 44 chars, no padding needed */
	strcat(text, "====");
	TEST_ASSERT(pepper_refused(text));
	b64std(raw, 32, text);
	strcat(text, "\n");
	TEST_ASSERT(pepper_refused(text)); /* no whitespace, not even a newline */
	b64std(raw, 32, text);
	memmove(text + 1, text, strlen(text) + 1);
	text[0] = ' ';
	TEST_ASSERT(pepper_refused(text));
	/* Mixed alphabets. */
	b64std(raw, 48, text);
	size_t tl = strlen(text);
	text[1] = '+';
	text[tl - 2] = '_';
	TEST_ASSERT(pepper_refused(text));
	/* Non-zero trailing bits: 32 bytes leave 2 spare bits in the 43rd char. */
	b64std(raw, 32, text);
	strip_pad(text);
	{
		/* Set one of the two spare low bits of the last character. */
		static const char A[] =
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		const char *p = strchr(A, text[42]);
		TEST_ASSERT(p != NULL);
		int v = p ? (int)(p - A) : 0;
		TEST_ASSERT((v & 3) == 0);
		text[42] = A[v | 1];
	}
	TEST_ASSERT(pepper_refused(text));
	/* Bad hex. */
	strcpy(hex, "hex:");
	for (int i = 0; i < 32; i++)
		sprintf(hex + 4 + 2 * i, "%02x", raw[i]);
	hex[strlen(hex) - 1] = '\0';
	TEST_ASSERT(pepper_refused(hex)); /* odd length */
	strcpy(hex, "hex:");
	for (int i = 0; i < 32; i++)
		sprintf(hex + 4 + 2 * i, "%02x", raw[i]);
	hex[20] = 'g';
	TEST_ASSERT(pepper_refused(hex));
	hex[20] = '\0';
	TEST_ASSERT(pepper_refused(hex));
	TEST_ASSERT(pepper_refused("HEX:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));
	TEST_ASSERT(pepper_refused("hex: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));
	TEST_ASSERT(pepper_refused("hex:0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));

	/* Something huge is refused without trouble. */
	char *huge = malloc(100001);
	TEST_ASSERT(huge != NULL);
	if (huge != NULL) {
		memset(huge, 'A', 100000);
		huge[100000] = '\0';
		TEST_ASSERT(pepper_refused(huge));
		free(huge);
	}

	/* why and out_len may be NULL. */
	b64std(raw, 32, text);
	unsigned char out[TK_PEPPER_MAX];
	TEST_ASSERT(tk_pepper_decode(text, out, NULL, NULL) == 0);
	TEST_ASSERT(tk_pepper_decode("x", out, NULL, NULL) == -1);
}

static void test_random(void)
{
	unsigned char a[64], b[64];
	TEST_ASSERT(tk_random_bytes(a, sizeof(a)) == 0);
	TEST_ASSERT(tk_random_bytes(b, sizeof(b)) == 0);
	TEST_ASSERT(memcmp(a, b, sizeof(a)) != 0);
	TEST_ASSERT(!all_zero(a, sizeof(a)));
	TEST_ASSERT(tk_random_bytes(a, 0) == 0);
	TEST_ASSERT(tk_random_bytes(NULL, 0) == 0);

	/* The hook: the next n calls fail with the buffer zeroed, then it recovers. */
	tk_random_fail_for_testing(2);
	memset(a, 0xAA, sizeof(a));
	TEST_ASSERT(tk_random_bytes(a, sizeof(a)) == -1);
	TEST_ASSERT(all_zero(a, sizeof(a)));
	memset(a, 0xAA, sizeof(a));
	TEST_ASSERT(tk_random_bytes(a, sizeof(a)) == -1);
	TEST_ASSERT(all_zero(a, sizeof(a)));
	TEST_ASSERT(tk_random_bytes(a, sizeof(a)) == 0);
	TEST_ASSERT(!all_zero(a, sizeof(a)));

	/* Reset to 0 cancels; negative counts mean 0. */
	tk_random_fail_for_testing(5);
	tk_random_fail_for_testing(0);
	TEST_ASSERT(tk_random_bytes(a, sizeof(a)) == 0);
	tk_random_fail_for_testing(-3);
	TEST_ASSERT(tk_random_bytes(a, sizeof(a)) == 0);

	/* C10: a secret is never produced from a failed CSPRNG. */
	char sec[TK_SECRET_LEN + 1];
	memset(sec, 'x', sizeof(sec));
	tk_random_fail_for_testing(1);
	TEST_ASSERT(tk_secret_generate(sec) == TK_KEYFMT_RANDOM);
	TEST_ASSERT_STR(sec, "");
	TEST_ASSERT(all_zero((unsigned char *)sec, sizeof(sec)));
	TEST_ASSERT(tk_secret_generate(sec) == TK_KEYFMT_OK);
}

/* ---- tk_random_fast: the per-thread buffer ---- */

enum { FAST_N = 20000 };   /* 16-byte draws: 78 refills of the 4 KiB buffer */

static int cmp16(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

/* How many of the n 16-byte values in v appear twice (v gets sorted). */
static int dups16(unsigned char (*v)[16], size_t n)
{
	int d = 0;

	qsort(v, n, 16, cmp16);
	for (size_t i = 1; i < n; i++)
		d += memcmp(v[i - 1], v[i], 16) == 0;
	return d;
}

static void test_random_fast(void)
{
	unsigned char (*v)[16] = calloc(FAST_N, 16);
	unsigned char a[TK_RANDOM_FAST_MAX + 1];
	int ok = 1;

	TEST_ASSERT(v != NULL);
	if (v == NULL)
		return;
	/* Never the same bytes twice, across refills: all 16-byte draws distinct. */
	for (size_t i = 0; i < FAST_N && ok; i++)
		ok = tk_random_fast(v[i], 16) == 0 && !all_zero(v[i], 16);
	TEST_ASSERT(ok);
	TEST_ASSERT(dups16(v, FAST_N) == 0);

	/* Odd sizes that straddle the end of the buffer: each draw is fresh bytes
	 * (a repeat of the previous draw's tail would show as equal windows). */
	unsigned char prev[TK_RANDOM_FAST_MAX], cur[TK_RANDOM_FAST_MAX];
	size_t pl = 0;
	ok = 1;
	for (int i = 0; i < 3000 && ok; i++) {
		size_t n = 1 + (size_t)(i * 37) % TK_RANDOM_FAST_MAX;
		ok = tk_random_fast(cur, n) == 0;
		if (ok && n >= 8 && pl >= 8)
			ok = memcmp(cur, prev + pl - 8, 8) != 0 && memcmp(cur, prev, 8) != 0;
		memcpy(prev, cur, n);
		pl = n;
	}
	TEST_ASSERT(ok);

	/* Bad input: clear refusal, buffer zeroed; n = 0 is nothing to do. */
	memset(a, 0xAA, sizeof(a));
	TEST_ASSERT(tk_random_fast(a, sizeof(a)) == -1);
	TEST_ASSERT(all_zero(a, sizeof(a)));
	TEST_ASSERT(tk_random_fast(NULL, 16) == -1);
	TEST_ASSERT(tk_random_fast(NULL, 0) == 0);
	TEST_ASSERT(tk_random_fast(a, 0) == 0);

	/* The failure hook applies (C10: no jti from a failed CSPRNG), then recovers. */
	tk_random_fail_for_testing(1);
	memset(a, 0xAA, 16);
	TEST_ASSERT(tk_random_fast(a, 16) == -1);
	TEST_ASSERT(all_zero(a, 16));
	TEST_ASSERT(tk_random_fast(a, 16) == 0 && !all_zero(a, 16));
	free(v);
}

struct fast_thread {
	unsigned char (*v)[16];
	size_t n;
	int ok;
};

static void *fast_thread_main(void *arg)
{
	struct fast_thread *t = arg;

	t->ok = 1;
	for (size_t i = 0; i < t->n && t->ok; i++)
		t->ok = tk_random_fast(t->v[i], 16) == 0;
	return NULL;
}

/* Threads never share bytes, and each thread's buffer is freed (wiped) when it exits. */
static void test_random_fast_threads(void)
{
	enum { T = 4, PER = 5000 };
	unsigned char (*v)[16] = calloc((size_t)T * PER, 16);
	struct fast_thread t[T];
	pthread_t th[T];
	unsigned char one[16];

	TEST_ASSERT(v != NULL);
	if (v == NULL)
		return;
	TEST_ASSERT(tk_random_fast(one, sizeof(one)) == 0);   /* this thread's buffer exists */
	long live = tk_random_fast_buffers_for_testing();
	TEST_ASSERT(live >= 1);
	for (int i = 0; i < T; i++) {
		t[i] = (struct fast_thread){ v + (size_t)i * PER, PER, 0 };
		TEST_ASSERT(pthread_create(&th[i], NULL, fast_thread_main, &t[i]) == 0);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		TEST_ASSERT(t[i].ok);
	}
	TEST_ASSERT(dups16(v, (size_t)T * PER) == 0);
	/* Every worker thread's buffer was released at its exit: back to ours only. */
	TEST_ASSERT(tk_random_fast_buffers_for_testing() == live);
	free(v);
}

/* A forked child never hands out what its parent's buffer still holds: without
 * the fork handling, the child's next draws would be exactly the parent's. */
static void test_random_fast_fork(void)
{
	enum { K = 64 };
	unsigned char parent[K][16], child[K][16], first[16];
	int fds[2];

	TEST_ASSERT(tk_random_fast(first, sizeof(first)) == 0);   /* the buffer is full now */
	TEST_ASSERT(pipe(fds) == 0);
	pid_t pid = fork();
	TEST_ASSERT(pid >= 0);
	if (pid < 0)
		return;
	if (pid == 0) {
		unsigned char mine[K][16];
		int ok = 1;
		close(fds[0]);
		for (int i = 0; i < K && ok; i++)
			ok = tk_random_fast(mine[i], 16) == 0;
		ssize_t w = ok ? write(fds[1], mine, sizeof(mine)) : -1;
		_exit(w == (ssize_t)sizeof(mine) ? 0 : 1);
	}
	close(fds[1]);
	size_t got = 0;
	while (got < sizeof(child)) {
		ssize_t r = read(fds[0], (unsigned char *)child + got, sizeof(child) - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fds[0]);
	int status = 0;
	TEST_ASSERT(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	TEST_ASSERT(got == sizeof(child));
	int ok = 1;
	for (int i = 0; i < K && ok; i++)
		ok = tk_random_fast(parent[i], 16) == 0;
	TEST_ASSERT(ok);
	int common = 0;
	for (int i = 0; i < K; i++)
		for (int j = 0; j < K; j++)
			common += memcmp(parent[i], child[j], 16) == 0;
	TEST_ASSERT(common == 0);
}

static void test_wipe(void)
{
	unsigned char buf[100];
	memset(buf, 0x77, sizeof(buf));
	tk_wipe(buf + 10, 50);
	TEST_ASSERT(buf[9] == 0x77 && buf[60] == 0x77);
	TEST_ASSERT(all_zero(buf + 10, 50));
	tk_wipe(NULL, 0);
	tk_wipe(buf, 0);
	TEST_ASSERT(buf[0] == 0x77);
}

/* Decode into an exactly sized heap buffer (ASan catches overruns). */
static long dec(const char *s, unsigned char **outp)
{
	size_t len = strlen(s);
	unsigned char *out = malloc(len * 3 / 4 + 1);
	long n = out ? tk_b64url_decode(s, len, out) : -2;
	*outp = out;
	return n;
}

static int dec_is(const char *s, const char *want)
{
	unsigned char *out;
	long n = dec(s, &out);
	int ok = n == (long)strlen(want) && memcmp(out, want, (size_t)n) == 0;
	free(out);
	return ok;
}

static int dec_refused(const char *s, size_t len)
{
	unsigned char out[128];
	return tk_b64url_decode(s, len, out) == -1;
}

static void test_b64url(void)
{
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const enc[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
	char out[256];
	for (size_t i = 0; i < 7; i++) {
		size_t n = strlen(plain[i]);
		TEST_ASSERT(tk_b64url_encoded_len(n) == strlen(enc[i]));
		TEST_ASSERT(tk_b64url_encode(plain[i], n, out) == strlen(enc[i]));
		TEST_ASSERT_STR(out, enc[i]);
		TEST_ASSERT(dec_is(enc[i], plain[i]));
	}
	/* The URL-safe characters. */
	static const unsigned char hi[] = { 0xfb, 0xff, 0xbf };
	TEST_ASSERT(tk_b64url_encode(hi, 3, out) == 4);
	TEST_ASSERT_STR(out, "-_-_");
	TEST_ASSERT(tk_b64url_encode(hi, 2, out) == 3);
	TEST_ASSERT_STR(out, "-_8");

	/* Round trips of random data of every length 0..100. */
	int bad = 0;
	for (size_t n = 0; n <= 100; n++) {
		unsigned char src[100], back[100];
		char e[140];
		if (n > 0 && tk_random_bytes(src, n) != 0)
			bad++;
		size_t el = tk_b64url_encode(src, n, e);
		if (el != tk_b64url_encoded_len(n) || strlen(e) != el)
			bad++;
		if (strspn(e, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != el)
			bad++;
		long dl = tk_b64url_decode(e, el, back);
		if (dl != (long)n || memcmp(src, back, n) != 0)
			bad++;
	}
	TEST_ASSERT(bad == 0);

	/* Strict refusals. */
	TEST_ASSERT(dec_refused("Zg==", 4));     /* padding */
	TEST_ASSERT(dec_refused("Zm8=", 4));
	TEST_ASSERT(dec_refused("Zg=", 3));
	TEST_ASSERT(dec_refused("Zm9+", 4));     /* standard alphabet */
	TEST_ASSERT(dec_refused("Zm9/", 4));
	TEST_ASSERT(dec_refused("Zh", 2));       /* trailing bits set (4 spare bits) */
	TEST_ASSERT(dec_refused("Zm9", 3));      /* trailing bits set (2 spare bits) */
	TEST_ASSERT(dec_is("Zm8", "fo"));
	TEST_ASSERT(dec_refused("Zm9vY", 5));    /* length 1 mod 4 */
	TEST_ASSERT(dec_refused("Z", 1));
	TEST_ASSERT(dec_refused("Zm9 v", 5));
	TEST_ASSERT(dec_refused("Zm9v\n", 5));
	TEST_ASSERT(dec_refused("Zm\0v", 4));    /* NUL inside */
	TEST_ASSERT(dec_refused("Zm9v.", 5));
	TEST_ASSERT(dec_refused("\xc3\xa9xx", 4));
	unsigned char o[4];
	TEST_ASSERT(tk_b64url_decode("", 0, o) == 0);
	TEST_ASSERT(tk_b64url_decode(NULL, 0, o) == 0);
	/* Only len bytes are read. */
	TEST_ASSERT(tk_b64url_decode("Zm9vZZZZ", 4, o) == 3 && memcmp(o, "foo", 3) == 0);

	/* Every byte as the third of four characters: decoded to its place in the
	 * URL-safe alphabet, refused when it has none (a table decides it). */
	static const char url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	int wrong = 0;
	for (int b = 0; b < 256; b++) {
		const char *hit = b ? strchr(url, b) : NULL;
		char in[4] = { 'A', 'A', (char)b, 'A' };
		long n = tk_b64url_decode(in, 4, o);
		if (!hit) {
			wrong += n != -1;
			continue;
		}
		unsigned v = (unsigned)(hit - url);   /* bits 6..11 of the 24 */
		wrong += n != 3 || o[0] != 0 || o[1] != (unsigned char)(v >> 2) ||
		         o[2] != (unsigned char)((v & 3U) << 6);
	}
	TEST_ASSERT(wrong == 0);
}

/* Prints (does not assert) the cost of one secret hash. C9 asks <= 5 us. */
static void bench_hasher(void)
{
	unsigned char key[32], out[TK_HASH_LEN];
	char sec[TK_SECRET_LEN + 1];
	TEST_ASSERT(tk_random_bytes(key, sizeof(key)) == 0);
	TEST_ASSERT(tk_secret_generate(sec) == TK_KEYFMT_OK);
	tk_hasher *h = tk_hasher_new(key, sizeof(key));
	TEST_ASSERT(h != NULL);
	if (h == NULL)
		return;
	enum { N = 200000 };
	int fails = 0;
	for (int i = 0; i < 1000; i++)
		fails += tk_hasher_hash(h, sec, TK_SECRET_LEN, out) != 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < N; i++) {
		sec[5] = (char)('A' + (i & 15));
		fails += tk_hasher_hash(h, sec, TK_SECRET_LEN, out) != 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / N;
	fprintf(stderr, "   tk_hasher_hash of a %d-byte secret: %.0f ns per hash\n", TK_SECRET_LEN,
	        ns);
	TEST_ASSERT(fails == 0);
	tk_hasher_free(h);
}

/* AES-256-GCM: round trip; a fresh nonce each time; wrong key, altered
 * ciphertext, tag or aad refused with the output wiped. */
static void test_aead(void)
{
	unsigned char key[TK_AEAD_KEY_LEN], key2[TK_AEAD_KEY_LEN];
	unsigned char n1[TK_AEAD_NONCE_LEN], n2[TK_AEAD_NONCE_LEN], t1[TK_AEAD_TAG_LEN], t2[TK_AEAD_TAG_LEN];
	const char pt[] = "{\"kty\":\"EC\",\"d\":\"secret\"}";
	unsigned char ct[sizeof(pt)], ct2[sizeof(pt)], out[sizeof(pt)];
	const char aad[] = "kid\0ES256", aad2[] = "kid\0RS256";

	memset(key, 7, sizeof(key));
	memset(key2, 8, sizeof(key2));
	TEST_ASSERT(tk_aead_seal(key, aad, sizeof(aad), pt, sizeof(pt), ct, n1, t1) == 0);
	TEST_ASSERT(tk_aead_seal(key, aad, sizeof(aad), pt, sizeof(pt), ct2, n2, t2) == 0);
	TEST_ASSERT(memcmp(n1, n2, sizeof(n1)) != 0 && memcmp(ct, ct2, sizeof(ct)) != 0);
	TEST_ASSERT(memmem(ct, sizeof(ct), "secret", 6) == NULL);
	TEST_ASSERT(tk_aead_open(key, aad, sizeof(aad), ct, sizeof(ct), n1, t1, out) == 0);
	TEST_ASSERT(memcmp(out, pt, sizeof(pt)) == 0);
	memset(out, 0x55, sizeof(out));
	TEST_ASSERT(tk_aead_open(key2, aad, sizeof(aad), ct, sizeof(ct), n1, t1, out) == -1);
	TEST_ASSERT(out[0] == 0 && out[sizeof(out) - 1] == 0);
	TEST_ASSERT(tk_aead_open(key, aad2, sizeof(aad2), ct, sizeof(ct), n1, t1, out) == -1);
	TEST_ASSERT(tk_aead_open(key, aad, sizeof(aad), ct, sizeof(ct), n2, t1, out) == -1);
	t1[0] ^= 1;
	TEST_ASSERT(tk_aead_open(key, aad, sizeof(aad), ct, sizeof(ct), n1, t1, out) == -1);
	t1[0] ^= 1;
	ct[3] ^= 0x80;
	TEST_ASSERT(tk_aead_open(key, aad, sizeof(aad), ct, sizeof(ct), n1, t1, out) == -1);
	tk_random_fail_for_testing(1);
	TEST_ASSERT(tk_aead_seal(key, aad, sizeof(aad), pt, sizeof(pt), ct, n1, t1) == -1);
}

int main(void)
{
	TEST_RUN(test_hmac_kat);
	TEST_RUN(test_hasher_limits);
	TEST_RUN(test_digest_equal);
	TEST_RUN(test_pepper);
	TEST_RUN(test_random);
	TEST_RUN(test_random_fast);
	TEST_RUN(test_random_fast_threads);
	TEST_RUN(test_random_fast_fork);
	TEST_RUN(test_wipe);
	TEST_RUN(test_b64url);
	TEST_RUN(test_aead);
	TEST_RUN(bench_hasher);
	TEST_DONE();
}
