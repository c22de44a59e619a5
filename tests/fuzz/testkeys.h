/*
 * testkeys.h - the fixed JWK Set of the verify and JWKS harnesses.
 *
 * Test keys only, never used outside tests/fuzz:
 *   - "fuzz-es256": an EC P-256 key whose private scalar is
 *     SHA-256("tokend fuzz test key: P-256"); only its public point is used.
 *   - "fuzz-eddsa": an Ed25519 key whose seed is
 *     SHA-256("tokend fuzz test key: Ed25519"); fuzz_verify signs with it so
 *     that header and payload checks after the signature get fuzzed too.
 *   - "fuzz-rs256": the PUBLIC part of a 2048-bit RSA key (n below, e 65537);
 *     its private part was never written anywhere.
 * Both derived keys are public knowledge by construction: they protect
 * nothing. tests/fuzz/mkcorpus.py derives the same keys for the seeds.
 */
#ifndef TOKEND_FUZZ_TESTKEYS_H
#define TOKEND_FUZZ_TESTKEYS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/sha.h>

#include <tokend/crypto.h>

#define FUZZ_ISSUER    "https://issuer.example"
#define FUZZ_AUDIENCE  "https://api.example"
#define FUZZ_SCOPE     "orders:read"
/* 2026-01-01T00:00:00Z: the fixed clock of the harnesses. */
#define FUZZ_NOW       1767225600LL

#define FUZZ_KID_ES256 "fuzz-es256"
#define FUZZ_KID_EDDSA "fuzz-eddsa"
#define FUZZ_KID_RS256 "fuzz-rs256"

#define FUZZ_RSA_N \
	"yvAkA_0D4KvgVVqJ3IYB3BsSgY7UnOVMAnuCSEJVDOdHzOwBuAOF7Tl-rPcJIZhlVb0wCm_2GQph6A7g1wZr2Tpb" \
	"cGzhOGm5EPdY5wnYz6xTK-lEFlHD6Vnf5Iy54HE9NC4aIQq9JcphvMsfrjup7SaTku2ptIU4SYg0wsXM6Lien8wG" \
	"pUisQ-7ULoqFo5VdC9nilSdx6XwXy96SmAlgNvHgJIooR7okoc-HBydXoj3kAKsFbv0WWDL7WLOrPrnfIYQVH2df" \
	"xOewqO-nEZnpt-qeRrxMvrm8pVrZKSltR1e2vWIO_xgFITukl3UitawYYUEmYrjCVX1NOeBh7Dy-kw"

static inline void fuzz_die(const char *what)
{
	fprintf(stderr, "fuzz harness setup failed: %s\n", what);
	abort();
}

static inline void fuzz_label_hash(const char *label, unsigned char out[32])
{
	SHA256((const unsigned char *)label, strlen(label), out);
}

/* The Ed25519 test key (private: fuzz_verify signs with it). */
static inline EVP_PKEY *fuzz_eddsa_key(void)
{
	unsigned char seed[32];
	fuzz_label_hash("tokend fuzz test key: Ed25519", seed);
	EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
	tk_wipe(seed, sizeof(seed));
	if (pk == NULL)
		fuzz_die("Ed25519 key");
	return pk;
}

/* The public point of the P-256 test key, as base64url x and y. */
static inline void fuzz_p256_public(char x64[44], char y64[44])
{
	unsigned char d[32], x[32], y[32];
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	EC_POINT *pt = g ? EC_POINT_new(g) : NULL;
	BIGNUM *k = NULL, *bx = BN_new(), *by = BN_new();
	fuzz_label_hash("tokend fuzz test key: P-256", d);
	k = BN_bin2bn(d, sizeof(d), NULL);
	if (!g || !pt || !k || !bx || !by || !EC_POINT_mul(g, pt, k, NULL, NULL, NULL) ||
	    !EC_POINT_get_affine_coordinates(g, pt, bx, by, NULL) ||
	    BN_bn2binpad(bx, x, 32) != 32 || BN_bn2binpad(by, y, 32) != 32)
		fuzz_die("P-256 key");
	tk_b64url_encode(x, 32, x64);
	tk_b64url_encode(y, 32, y64);
	BN_clear_free(k);
	BN_free(bx);
	BN_free(by);
	EC_POINT_free(pt);
	EC_GROUP_free(g);
	tk_wipe(d, sizeof(d));
}

/* The JWK Set of the three test keys, malloc'd. */
static inline char *fuzz_test_jwks(void)
{
	char ex[44], ey[44], ed[44];
	unsigned char raw[32];
	size_t rl = sizeof(raw);
	EVP_PKEY *pk = fuzz_eddsa_key();
	if (EVP_PKEY_get_raw_public_key(pk, raw, &rl) != 1 || rl != 32)
		fuzz_die("Ed25519 public key");
	EVP_PKEY_free(pk);
	tk_b64url_encode(raw, 32, ed);
	fuzz_p256_public(ex, ey);

	size_t cap = 2048;
	char *out = malloc(cap);
	if (!out)
		fuzz_die("out of memory");
	int n = snprintf(out, cap,
	                 "{\"keys\":["
	                 "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\","
	                 "\"kid\":\"" FUZZ_KID_ES256 "\",\"alg\":\"ES256\",\"use\":\"sig\"},"
	                 "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\","
	                 "\"kid\":\"" FUZZ_KID_EDDSA "\",\"alg\":\"EdDSA\",\"use\":\"sig\"},"
	                 "{\"kty\":\"RSA\",\"n\":\"" FUZZ_RSA_N "\",\"e\":\"AQAB\","
	                 "\"kid\":\"" FUZZ_KID_RS256 "\",\"alg\":\"RS256\",\"use\":\"sig\"}]}",
	                 ex, ey, ed);
	if (n < 0 || (size_t)n >= cap)
		fuzz_die("JWKS too long");
	return out;
}

#endif
