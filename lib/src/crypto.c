/*
 * crypto.c - pepper-keyed HMAC-SHA256, constant-time digest comparison,
 * pepper decoding, CSPRNG access with a failure hook, wiping, base64url.
 */
#include "tokend/crypto.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "internal.h"

/* ------------------------------------------------------------------------ */
/* Wiping and comparison                                                    */

int tk_secret_file_mode_ok(unsigned int mode, long owner, const char *what, char *why, size_t wl)
{
	long me = (long)geteuid();
	const char *accepted = "0600, 0400, or 0640/0440 owned by root or by tokend's user";
	mode &= 07777;
	if (mode & 007) {
		snprintf(why, wl, "%s is %s by others (mode %04o, owner uid %ld): run chmod o-rwx on it "
		         "(%s uid %ld are accepted)", what, (mode & 004) ? "readable" : "accessible",
		         mode, owner, accepted, me);
		return -1;
	}
	if (mode & 030) {
		snprintf(why, wl, "%s is writable or executable by its group (mode %04o, owner uid %ld): "
		         "run chmod g-wx on it (%s uid %ld are accepted)", what, mode, owner, accepted, me);
		return -1;
	}
	if ((mode & 040) && owner != 0 && owner != me) {
		snprintf(why, wl, "%s is readable by its group but owned by uid %ld, neither root nor "
		         "tokend's user (uid %ld) (mode %04o): chown it to one of them, or chmod g-r it",
		         what, owner, me, mode);
		return -1;
	}
	return 0;
}

/* explicit_bzero: a memset the compiler may not drop, at memset's speed
 * (OPENSSL_cleanse stores eight bytes at a time: a token request wipes a few
 * kilobytes - the request read, the answer sent, the decoded credentials). */
void tk_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		explicit_bzero(p, n);
}

int tk_digest_equal(const unsigned char a[TK_HASH_LEN], const unsigned char b[TK_HASH_LEN])
{
	return CRYPTO_memcmp(a, b, TK_HASH_LEN) == 0;
}

/* ------------------------------------------------------------------------ */
/* Hasher                                                                   */

struct tk_hasher {
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx; /* initialised with the pepper; re-inited per hash */
};

tk_hasher *tk_hasher_new(const unsigned char *pepper, size_t len)
{
	if (pepper == NULL || len < TK_PEPPER_MIN || len > TK_PEPPER_MAX)
		return NULL;

	tk_hasher *h = OPENSSL_zalloc(sizeof(*h));
	if (h == NULL)
		return NULL;
	h->mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
	if (h->mac == NULL)
		goto fail;
	h->ctx = EVP_MAC_CTX_new(h->mac);
	if (h->ctx == NULL)
		goto fail;

	char digest[] = OSSL_DIGEST_NAME_SHA2_256;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	if (EVP_MAC_init(h->ctx, pepper, len, params) != 1)
		goto fail;
	if (EVP_MAC_CTX_get_mac_size(h->ctx) != TK_HASH_LEN)
		goto fail;
	return h;
fail:
	tk_hasher_free(h);
	return NULL;
}

int tk_hasher_hash(tk_hasher *h, const void *msg, size_t len, unsigned char out[TK_HASH_LEN])
{
	size_t outl = 0;

	if (h == NULL || (msg == NULL && len > 0))
		goto fail;
	/* A NULL key re-initialises the MAC with the key already set. */
	if (EVP_MAC_init(h->ctx, NULL, 0, NULL) != 1)
		goto fail;
	if (len > 0 && EVP_MAC_update(h->ctx, msg, len) != 1)
		goto fail;
	if (EVP_MAC_final(h->ctx, out, &outl, TK_HASH_LEN) != 1 || outl != TK_HASH_LEN)
		goto fail;
	return 0;
fail:
	tk_wipe(out, TK_HASH_LEN);
	return -1;
}

void tk_hasher_free(tk_hasher *h)
{
	if (h == NULL)
		return;
	EVP_MAC_CTX_free(h->ctx); /* the HMAC provider cleanses its key copy */
	EVP_MAC_free(h->mac);
	OPENSSL_free(h);
}

/* ------------------------------------------------------------------------ */
/* Randomness                                                               */

static atomic_int random_failures;

void tk_random_fail_for_testing(int n)
{
	atomic_store(&random_failures, n > 0 ? n : 0);
}

/* Consume one forced failure, if any are pending. */
static int forced_failure(void)
{
	int cur = atomic_load(&random_failures);

	while (cur > 0) {
		if (atomic_compare_exchange_weak(&random_failures, &cur, cur - 1))
			return 1;
	}
	return 0;
}

int tk_random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;

	if (forced_failure())
		goto fail;
	if (n > 0 && p == NULL)
		return -1;
	for (size_t done = 0; done < n;) {
		size_t chunk = n - done;
		if (chunk > (size_t)INT_MAX)
			chunk = (size_t)INT_MAX;
		if (RAND_bytes(p + done, (int)chunk) != 1)
			goto fail;
		done += chunk;
	}
	return 0;
fail:
	tk_wipe(buf, n);
	return -1;
}

/* ------------------------------------------------------------------------ */
/* Buffered randomness (tk_random_fast)                                     */

/* One thread's unused CSPRNG bytes: b[pos..] not yet handed out, b[..pos)
 * already wiped. gen: the fork generation the bytes were drawn in. */
struct rnd_buf {
	unsigned char b[TK_RANDOM_FAST_BUF];
	size_t pos;
	unsigned long gen;
};

static pthread_once_t rnd_once = PTHREAD_ONCE_INIT;
static pthread_key_t rnd_key;      /* its destructor wipes a thread's buffer at exit */
static int rnd_ready;              /* 0: key or atfork handler missing: no buffering */
static atomic_ulong rnd_gen = 1;   /* moved on in every forked child */
static atomic_long rnd_live;       /* buffers allocated now */
static _Thread_local struct rnd_buf *rnd_tls;

/* In the child, only the forking thread runs: drop its bytes now (the others'
 * copies belong to threads that do not exist here, and the generation keeps
 * anyone from using them). */
static void rnd_atfork_child(void)
{
	atomic_fetch_add(&rnd_gen, 1);
	if (rnd_tls != NULL) {
		tk_wipe(rnd_tls->b, sizeof(rnd_tls->b));
		rnd_tls->pos = sizeof(rnd_tls->b);
	}
}

static void rnd_destroy(void *p)
{
	struct rnd_buf *r = p;

	tk_wipe(r, sizeof(*r));
	free(r);
	rnd_tls = NULL;
	atomic_fetch_sub(&rnd_live, 1);
}

static void rnd_init(void)
{
	if (pthread_key_create(&rnd_key, rnd_destroy) != 0)
		return;
	if (pthread_atfork(NULL, NULL, rnd_atfork_child) != 0)
		return;   /* without the fork handler, no buffering at all */
	rnd_ready = 1;
}

/* This thread's buffer, allocated on first use; NULL when buffering is off. */
static struct rnd_buf *rnd_get(void)
{
	struct rnd_buf *r = rnd_tls;

	if (r != NULL)
		return r;
	if (pthread_once(&rnd_once, rnd_init) != 0 || !rnd_ready)
		return NULL;
	r = malloc(sizeof(*r));
	if (r == NULL)
		return NULL;
	r->pos = sizeof(r->b);   /* empty: filled below, by the caller */
	r->gen = 0;
	if (pthread_setspecific(rnd_key, r) != 0) {
		free(r);
		return NULL;
	}
	atomic_fetch_add(&rnd_live, 1);
	rnd_tls = r;
	return r;
}

long tk_random_fast_buffers_for_testing(void)
{
	return atomic_load(&rnd_live);
}

int tk_random_fast(void *buf, size_t n)
{
	struct rnd_buf *r;
	unsigned long gen;

	if (n > TK_RANDOM_FAST_MAX || (n > 0 && buf == NULL) || forced_failure())
		goto fail;
	if (n == 0)
		return 0;
	r = rnd_get();
	if (r == NULL)
		return tk_random_bytes(buf, n);
	gen = atomic_load(&rnd_gen);
	if (r->gen != gen || sizeof(r->b) - r->pos < n) {
		/* Refill whole: the rest of the old bytes is wiped, never reused. */
		tk_wipe(r->b, sizeof(r->b));
		r->pos = sizeof(r->b);
		if (RAND_bytes(r->b, (int)sizeof(r->b)) != 1) {
			tk_wipe(r->b, sizeof(r->b));
			goto fail;
		}
		r->pos = 0;
		r->gen = gen;
	}
	memcpy(buf, r->b + r->pos, n);
	tk_wipe(r->b + r->pos, n);
	r->pos += n;
	return 0;
fail:
	tk_wipe(buf, n);
	return -1;
}

/* ------------------------------------------------------------------------ */
/* base64                                                                   */

static const char B64URL[64] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/*
 * Decode unpadded base64 text of `len` characters with the given alphabet.
 * Strict: refuses len % 4 == 1, foreign characters and non-zero trailing
 * bits. `out` must hold len / 4 * 3 + 2 bytes. Returns the decoded length or -1.
 */
static long b64_decode(const char *in, size_t len, unsigned char *out, int alphabets)
{
	if (len % 4 == 1 || len / 4 > (size_t)LONG_MAX / 3 - 1)
		return -1;
	if (len > 0 && in == NULL)
		return -1;

	size_t o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	int bad = 0;                      /* negative once a byte is in no alphabet */
	for (size_t i = 0; i < len; i++) {
		int v = tk_b64_value((unsigned char)in[i], alphabets);
		bad |= v;
		acc = (acc << 6) | ((uint32_t)v & 63U);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1U << bits) - 1U;
		}
	}
	/* Left-over bits (2 or 4) must be zero for a canonical encoding. */
	if (bad < 0 || acc != 0)
		return -1;
	return (long)o;
}

size_t tk_b64url_encoded_len(size_t n)
{
	static const size_t tail[3] = { 0, 2, 3 };
	return n / 3 * 4 + tail[n % 3];
}

size_t tk_b64url_encode(const void *in, size_t n, char *out)
{
	const unsigned char *p = in;
	size_t o = 0, i = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = B64URL[(v >> 18) & 63];
		out[o++] = B64URL[(v >> 12) & 63];
		out[o++] = B64URL[(v >> 6) & 63];
		out[o++] = B64URL[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = B64URL[(v >> 18) & 63];
		out[o++] = B64URL[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = B64URL[(v >> 18) & 63];
		out[o++] = B64URL[(v >> 12) & 63];
		out[o++] = B64URL[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

long tk_b64url_decode(const char *in, size_t len, unsigned char *out)
{
	return b64_decode(in, len, out, TK_B64_URL);
}

/* ------------------------------------------------------------------------ */
/* Pepper                                                                   */

/* Longest pepper text we look at: "hex:" + 2 * TK_PEPPER_MAX, with room to
 * spare so that "too long" is reported as such rather than as garbage. */
#define PEPPER_TEXT_MAX (4 + 4 * TK_PEPPER_MAX)

int tk_hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode hex text into buf (room for len / 2 bytes): length or -1. */
static long hex_decode(const char *in, size_t len, unsigned char *buf)
{
	if (len % 2 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 2) {
		int hi = tk_hex_digit((unsigned char)in[i]);
		int lo = tk_hex_digit((unsigned char)in[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		buf[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	return (long)(len / 2);
}

/* Decode standard or URL-safe base64 with optional (but then correct) padding.
 * The two alphabets may not be mixed. buf needs len / 4 * 3 + 2 bytes. */
static long pepper_b64_decode(const char *in, size_t len, unsigned char *buf)
{
	size_t pad = 0;
	while (pad < len && pad < 2 && in[len - 1 - pad] == '=')
		pad++;
	if (pad > 0 && len % 4 != 0)
		return -1;
	len -= pad;
	/* Padding, if present, must be exactly what the unpadded length needs. */
	if (pad > 0 && (4 - len % 4) % 4 != pad)
		return -1;

	int has_std = 0, has_url = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '+' || in[i] == '/')
			has_std = 1;
		else if (in[i] == '-' || in[i] == '_')
			has_url = 1;
	}
	if (has_std && has_url)
		return -1;
	return b64_decode(in, len, buf, has_std ? TK_B64_STD : TK_B64_URL);
}

int tk_pepper_decode(const char *text, unsigned char out[TK_PEPPER_MAX], size_t *out_len,
                     const char **why)
{
	unsigned char buf[PEPPER_TEXT_MAX]; /* big enough for any accepted text length */
	const char *reason = NULL;
	long n = -1;

	if (out_len != NULL)
		*out_len = 0;
	if (text == NULL) {
		reason = "pepper is missing";
		goto fail;
	}
	size_t tlen = strnlen(text, PEPPER_TEXT_MAX + 1);
	if (tlen > PEPPER_TEXT_MAX) {
		reason = "pepper is longer than 64 bytes";
		goto fail;
	}
	if (tlen >= 4 && memcmp(text, "hex:", 4) == 0) {
		n = hex_decode(text + 4, tlen - 4, buf);
		if (n < 0) {
			reason = "pepper is not valid hex";
			goto fail;
		}
	} else {
		n = pepper_b64_decode(text, tlen, buf);
		if (n < 0) {
			reason = "pepper is not valid base64 (or hex:...)";
			goto fail;
		}
	}
	if (n < TK_PEPPER_MIN) {
		reason = "pepper is shorter than 32 bytes";
		goto fail;
	}
	if (n > TK_PEPPER_MAX) {
		reason = "pepper is longer than 64 bytes";
		goto fail;
	}

	unsigned char seen[256] = { 0 };
	int distinct = 0;
	for (long i = 0; i < n; i++) {
		if (!seen[buf[i]]) {
			seen[buf[i]] = 1;
			distinct++;
		}
	}
	tk_wipe(seen, sizeof(seen));
	if (distinct < 16) {
		reason = "pepper does not look random (fewer than 16 distinct byte values)";
		goto fail;
	}

	memcpy(out, buf, (size_t)n);
	tk_wipe(buf, sizeof(buf));
	if (out_len != NULL)
		*out_len = (size_t)n;
	if (why != NULL)
		*why = NULL;
	return 0;
fail:
	tk_wipe(buf, sizeof(buf));
	if (out != NULL)
		tk_wipe(out, TK_PEPPER_MAX);
	if (why != NULL)
		*why = reason;
	return -1;
}

/* ------------------------------------------------------------------------ */
/* AES-256-GCM                                                              */

/* One GCM operation: enc 1 seals, 0 opens (tag checked by the final call). */
static int aead_run(int enc, const unsigned char *key, const void *aad, size_t aadlen,
                    const unsigned char *in, size_t len, unsigned char *out,
                    const unsigned char *nonce, unsigned char *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, ok = 0;

	if (ctx == NULL || len > (size_t)INT_MAX || aadlen > (size_t)INT_MAX)
		goto out;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, TK_AEAD_NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1)
		goto out;
	if (aadlen > 0 && EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
		goto out;
	if (len > 0 && EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1)
		goto out;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TK_AEAD_TAG_LEN, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(ctx, out + (len > 0 ? (size_t)n : 0), &n) != 1)
		goto out;
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TK_AEAD_TAG_LEN, tag) != 1)
		goto out;
	ok = 1;
out:
	EVP_CIPHER_CTX_free(ctx);
	ERR_clear_error();
	if (!ok && len > 0 && out != NULL)
		tk_wipe(out, len);
	return ok ? 0 : -1;
}

int tk_aead_seal(const unsigned char key[TK_AEAD_KEY_LEN], const void *aad, size_t aadlen,
                 const void *pt, size_t ptlen, unsigned char *ct,
                 unsigned char nonce[TK_AEAD_NONCE_LEN], unsigned char tag[TK_AEAD_TAG_LEN])
{
	if (key == NULL || ct == NULL || nonce == NULL || tag == NULL || (ptlen > 0 && pt == NULL))
		return -1;
	if (tk_random_bytes(nonce, TK_AEAD_NONCE_LEN) != 0) {
		if (ptlen > 0)
			tk_wipe(ct, ptlen);
		return -1;
	}
	return aead_run(1, key, aad, aadlen, pt, ptlen, ct, nonce, tag);
}

int tk_aead_open(const unsigned char key[TK_AEAD_KEY_LEN], const void *aad, size_t aadlen,
                 const unsigned char *ct, size_t ctlen,
                 const unsigned char nonce[TK_AEAD_NONCE_LEN],
                 const unsigned char tag[TK_AEAD_TAG_LEN], unsigned char *pt)
{
	unsigned char t[TK_AEAD_TAG_LEN];

	if (key == NULL || nonce == NULL || tag == NULL || pt == NULL || (ctlen > 0 && ct == NULL))
		return -1;
	memcpy(t, tag, sizeof(t));
	return aead_run(0, key, aad, aadlen, ct, ctlen, pt, nonce, t);
}
