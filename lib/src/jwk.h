/*
 * jwk.h - the one JWK key parser of libtokend (internal: not installed, not
 * exported from the shared library).
 *
 * The signer (a private JWK read from a key file) and the verifier (public
 * JWKs from a JWK Set) both turn a JWK object into an OpenSSL EVP_PKEY here,
 * under one policy:
 *   EC   crv "P-256" only; x, y (and d) exactly 32 bytes; the point must lie
 *        on the curve (OpenSSL's public check);
 *   OKP  crv "Ed25519" only; x (and d) exactly 32 bytes; x a canonical
 *        encoding of a point not of small order; with d, x must be the
 *        public key derived from d;
 *   RSA  n of 2048..8192 bits (one leading zero octet tolerated), odd;
 *        e odd and at least 3; no multi-prime ("oth") keys.
 * Members are canonical base64url (tk_b64url_decode). Decoded private bytes
 * are wiped before they are freed.
 *
 * Every function returns NULL (or -1) with the reason in `why` and leaves
 * its outputs empty; the OpenSSL error queue is left clear.
 */
#ifndef TOKEND_JWK_H
#define TOKEND_JWK_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "internal.h"
#include "tokend/signer.h"

#define TK_JWK_P256_LEN      32
#define TK_JWK_ED25519_LEN   32
#define TK_JWK_RSA_MIN_BITS  2048
#define TK_JWK_RSA_MAX_BITS  8192
#define TK_JWK_RSA_MAX_BYTES (TK_JWK_RSA_MAX_BITS / 8)

/* Which half of the key the JWK must describe. */
typedef enum tk_jwk_part {
	TK_JWK_PUBLIC = 0,     /* public members only (a JWKS entry) */
	TK_JWK_PRIVATE = 1,    /* public and private members (a key file) */
} tk_jwk_part;

/* The RSA private members, in JWK order: JWK names and OpenSSL names. */
#define TK_JWK_RSA_PRIV_COUNT 6
TK_INTERNAL extern const char *const tk_jwk_rsa_private[TK_JWK_RSA_PRIV_COUNT];
TK_INTERNAL extern const char *const tk_jwk_rsa_private_ossl[TK_JWK_RSA_PRIV_COUNT];

/* A decoded base64url member; released (wiped, freed) by tk_jwk_bytes_release. */
typedef struct tk_jwk_bytes {
	unsigned char *p;
	size_t len;
} tk_jwk_bytes;

TK_INTERNAL void tk_jwk_bytes_release(tk_jwk_bytes *b);

/* Decode member `name` of `o`: `exact` > 0 requires that many bytes, else
 * 1..max. 0, or -1 with why set and *out empty. */
TK_INTERNAL int tk_jwk_member(json_t *o, const char *name, size_t exact, size_t max,
                              tk_jwk_bytes *out, char *why, size_t wl);

/* Copy big-endian `be` into `ne` in native byte order (OSSL_PARAM BN form). */
TK_INTERNAL void tk_jwk_be_to_native(const unsigned char *be, size_t n, unsigned char *ne);

/* The key a JWK of kty EC / OKP / RSA describes (the caller has read kty). */
TK_INTERNAL EVP_PKEY *tk_jwk_ec(json_t *o, tk_jwk_part part, char *why, size_t wl);
TK_INTERNAL EVP_PKEY *tk_jwk_okp(json_t *o, tk_jwk_part part, char *why, size_t wl);
TK_INTERNAL EVP_PKEY *tk_jwk_rsa(json_t *o, tk_jwk_part part, char *why, size_t wl);

/* ---- EVP_PKEY -> JWK (key files: a private key turned into the JWK that
 * libjwt loads and the public JWK that the JWKS publishes) ---- */

typedef enum tk_jwk_kty { TK_KTY_NONE = 0, TK_KTY_EC, TK_KTY_OKP, TK_KTY_RSA } tk_jwk_kty;

/* The base64url members of one key. priv[] is wiped on release. */
typedef struct tk_jwk_parts {
	tk_jwk_kty kty;
	const char *alg_name;                /* "ES256", "EdDSA", "RS256" (static) */
	char *x, *y;                         /* EC; OKP uses x only */
	char *n, *e;                         /* RSA */
	char *priv[TK_JWK_RSA_PRIV_COUNT];   /* EC/OKP: priv[0] = d; RSA: d p q dp dq qi */
} tk_jwk_parts;

/* Export a private key's members, enforcing the policy above (curve, RSA
 * size, no multi-prime). 0, or -1 with why set and *p empty. */
TK_INTERNAL int tk_jwk_export(const EVP_PKEY *pk, tk_jwk_parts *p, char *why, size_t wl);
TK_INTERNAL void tk_jwk_parts_release(tk_jwk_parts *p);

/* The JWK of `p` with kid, alg and use "sig"; private members only if asked.
 * malloc'd (a private one is freed with tk_secret_free), NULL when out of memory. */
TK_INTERNAL char *tk_jwk_parts_json(const tk_jwk_parts *p, const char *kid, int with_private);

/* RFC 7638 thumbprint of `p` (thumbprint.c). 0 or -1. */
TK_INTERNAL int tk_jwk_parts_thumbprint(const tk_jwk_parts *p, char out[TK_THUMBPRINT_LEN + 1]);

/* A kid is 1..TK_KID_MAX printable ASCII characters other than '"' and '\'
 * (so it never needs JSON escaping). 1 when `kid` is one. */
TK_INTERNAL int tk_jwk_kid_ok(const char *kid);

/* {"name":"value",...} in one allocation (no realloc, so no stray copies of
 * private values are left in freed memory). Values must need no escaping. */
typedef struct tk_jwk_member { const char *name; const char *value; } tk_jwk_member_t;
TK_INTERNAL char *tk_jwk_members_json(const tk_jwk_member_t *m, size_t count);

#endif
