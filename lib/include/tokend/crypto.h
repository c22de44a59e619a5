/*
 * crypto.h - secret hashing under the pepper, constant-time comparison,
 * randomness and wiping.
 *
 * A secret carries 256 random bits, so a slow password hash buys nothing: it
 * is stored as HMAC-SHA256(pepper, secret). The pepper is a server-side
 * random key of 32..64 bytes; without it a stolen table is useless.
 */
#ifndef TOKEND_CRYPTO_H
#define TOKEND_CRYPTO_H

#include "tokend/export.h"

#include <stddef.h>
#include <stdint.h>

/*
 * The longest access token, in bytes: the one limit the minter
 * (tk_minter_mint refuses longer), the verifier (TK_VERIFY_TOKEN_MAX), the
 * form parser's values (TK_FORM_VALUE_MAX: introspection and revocation's
 * `token`) and the server's body and header floors (bearer credentials)
 * derive from, so that every token tokend issues is accepted everywhere.
 */
#define TK_TOKEN_MAX 8192

#define TK_HASH_LEN     32
#define TK_PEPPER_MIN   32
#define TK_PEPPER_MAX   64

/* A pepper-keyed HMAC-SHA256 hasher. Not thread-safe: one per thread.
 * The key material is held inside OpenSSL and wiped on free. */
typedef struct tk_hasher tk_hasher;

/* Returns NULL if `len` is outside [TK_PEPPER_MIN, TK_PEPPER_MAX] or OpenSSL fails. */
TK_API tk_hasher *tk_hasher_new(const unsigned char *pepper, size_t len);
/* 0 on success and `out` filled; -1 on failure and `out` zeroed. */
TK_API int tk_hasher_hash(tk_hasher *h, const void *msg, size_t len, unsigned char out[TK_HASH_LEN]);
TK_API void tk_hasher_free(tk_hasher *h);

/* Constant-time comparison of two TK_HASH_LEN digests: 1 equal, 0 not. */
TK_API int tk_digest_equal(const unsigned char a[TK_HASH_LEN], const unsigned char b[TK_HASH_LEN]);

/*
 * Decode a pepper given as text: standard or URL-safe base64 (padding optional)
 * or "hex:" followed by hex digits. Refuses (returns -1, sets *why to a static
 * reason, wipes out) a value shorter than TK_PEPPER_MIN or longer than
 * TK_PEPPER_MAX bytes, or one that is visibly not random (fewer than 16
 * distinct byte values). On success returns 0 and sets *out_len.
 */
TK_API int tk_pepper_decode(const char *text, unsigned char out[TK_PEPPER_MAX], size_t *out_len,
                     const char **why);

/* Fill `buf` from the CSPRNG: 0 on success, -1 on failure (buf zeroed).
 * tk_random_fail_for_testing(n) makes the next n calls fail (tests of C10). */
TK_API int tk_random_bytes(void *buf, size_t n);
TK_API void tk_random_fail_for_testing(int n);

/*
 * Up to TK_RANDOM_FAST_MAX bytes from a per-thread buffer of CSPRNG output
 * (for a token's jti: one RAND_bytes call, and so one OpenSSL fork check and
 * getpid, per TK_RANDOM_FAST_BUF bytes instead of per token). Contract:
 * - bytes handed out are wiped from the buffer at once and never handed out
 *   again (not to this thread, not to another: each thread has its own buffer);
 * - a forked child never hands out bytes its parent drew (a pthread_atfork
 *   child handler moves a generation on: a buffer from an older generation is
 *   wiped and refilled before use);
 * - a thread's buffer is wiped and freed when the thread exits;
 * - when the buffer cannot be set up (allocation, atfork registration) every
 *   call falls back to tk_random_bytes: never weaker, only slower.
 * Returns 0, or -1 with buf zeroed: CSPRNG failure, n > TK_RANDOM_FAST_MAX,
 * buf NULL with n > 0, or a failure forced with tk_random_fail_for_testing.
 */
#define TK_RANDOM_FAST_MAX 64
#define TK_RANDOM_FAST_BUF 4096
TK_API int tk_random_fast(void *buf, size_t n);
/* How many threads' buffers are allocated now (tests: freed at thread exit). */
TK_API long tk_random_fast_buffers_for_testing(void);

/*
 * Whether a file holding a secret (a signing key, the pepper) may be used,
 * from its mode and owner (fstat): others must have no access at all; its
 * group may read it (0640, 0440: e.g. a Kubernetes secret volume with an
 * fsGroup) when the file is owned by root or by this process's effective
 * user, never write or run it. 0 if fine; -1 with the reason in `why`, which
 * names `what`, the mode, the owner and the fix, e.g.
 *   "private key file is readable by others (mode 0644, owner uid 1000):
 *    run chmod o-rwx on it (0600, 0400, or 0640/0440 owned by root or by
 *    tokend's user uid 998 are accepted)"
 */
TK_API int tk_secret_file_mode_ok(unsigned int mode, long owner, const char *what,
                                  char *why, size_t wl);

/*
 * AES-256-GCM (authenticated encryption of secrets at rest, e.g. signing keys
 * under a key-encryption key). tk_aead_seal draws a fresh random 96-bit nonce
 * from the CSPRNG for every call (written to `nonce`), encrypts `ptlen` bytes
 * of `pt` into `ct` (same length) and writes the 128-bit tag; `aad` (may be
 * empty) is authenticated, not encrypted: bind the ciphertext to what it
 * belongs to. tk_aead_open checks the tag before any plaintext is returned.
 * Both return 0, or -1 (wrong key, altered ciphertext, nonce, tag or aad;
 * CSPRNG or OpenSSL failure) with the output wiped.
 */
#define TK_AEAD_KEY_LEN    32
#define TK_AEAD_NONCE_LEN  12
#define TK_AEAD_TAG_LEN    16
TK_API int tk_aead_seal(const unsigned char key[TK_AEAD_KEY_LEN], const void *aad, size_t aadlen,
                        const void *pt, size_t ptlen, unsigned char *ct,
                        unsigned char nonce[TK_AEAD_NONCE_LEN], unsigned char tag[TK_AEAD_TAG_LEN]);
TK_API int tk_aead_open(const unsigned char key[TK_AEAD_KEY_LEN], const void *aad, size_t aadlen,
                        const unsigned char *ct, size_t ctlen,
                        const unsigned char nonce[TK_AEAD_NONCE_LEN],
                        const unsigned char tag[TK_AEAD_TAG_LEN], unsigned char *pt);

/* Wipe memory so the compiler cannot elide it (explicit_bzero). */
TK_API void tk_wipe(void *p, size_t n);

/* The value of a hex digit (either case), or -1. */
TK_API int tk_hex_digit(unsigned char c);

/* base64url without padding (RFC 4648 §5). `out` must hold
 * tk_b64url_encoded_len(n) + 1 bytes; returns the length written (NUL added). */
TK_API size_t tk_b64url_encoded_len(size_t n);
TK_API size_t tk_b64url_encode(const void *in, size_t n, char *out);
/* Strict decode: only [A-Za-z0-9_-], no padding, no trailing bits set, no
 * length of 1 mod 4. Returns decoded length, or -1. `out` holds >= len*3/4+1. */
TK_API long tk_b64url_decode(const char *in, size_t len, unsigned char *out);

#endif
