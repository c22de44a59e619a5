/*
 * jwk.c - JWK members -> OpenSSL EVP_PKEY, for the signer and the verifier
 * (the contract and the policy are in jwk.h).
 */
#include "internal.h"
#include "jwk.h"
#include "tokend/crypto.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>

#define RSA_E_MAX_BYTES 8

const char *const tk_jwk_rsa_private[TK_JWK_RSA_PRIV_COUNT] = { "d", "p", "q", "dp", "dq", "qi" };

const char *const tk_jwk_rsa_private_ossl[TK_JWK_RSA_PRIV_COUNT] = {
	OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
	OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
	OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};

void tk_jwk_bytes_release(tk_jwk_bytes *b)
{
	if (b->p != NULL) {
		tk_wipe(b->p, b->len);
		free(b->p);
	}
	b->p = NULL;
	b->len = 0;
}

int tk_jwk_member(json_t *o, const char *name, size_t exact, size_t max, tk_jwk_bytes *out,
                  char *why, size_t wl)
{
	json_t *v = json_object_get(o, name);
	const char *s = json_string_value(v);
	size_t slen;
	long n;

	out->p = NULL;
	out->len = 0;
	if (v == NULL) {
		tk_seterr(why, wl, "JWK member \"%s\" is missing", name);
		return -1;
	}
	if (s == NULL) {
		tk_seterr(why, wl, "JWK member \"%s\" is not a string", name);
		return -1;
	}
	slen = json_string_length(v);
	if (slen == 0 || slen > (max / 3 + 1) * 4) {
		tk_seterr(why, wl, "JWK member \"%s\" has a bad length", name);
		return -1;
	}
	out->p = malloc(slen / 4 * 3 + 3);
	if (out->p == NULL) {
		tk_seterr(why, wl, "out of memory");
		return -1;
	}
	out->len = slen / 4 * 3 + 3;
	n = tk_b64url_decode(s, slen, out->p);
	if (n <= 0) {
		tk_jwk_bytes_release(out);
		tk_seterr(why, wl, "JWK member \"%s\" is not canonical base64url", name);
		return -1;
	}
	if ((exact > 0 && (size_t)n != exact) || (size_t)n > max) {
		tk_jwk_bytes_release(out);
		tk_seterr(why, wl, "JWK member \"%s\" is %ld bytes; expected %zu", name, n,
		       exact > 0 ? exact : max);
		return -1;
	}
	out->len = (size_t)n;
	return 0;
}

void tk_jwk_be_to_native(const unsigned char *be, size_t n, unsigned char *ne)
{
	const uint16_t one = 1;
	unsigned char first;

	memcpy(&first, &one, 1);
	if (first == 1)
		for (size_t i = 0; i < n; i++)
			ne[i] = be[n - 1 - i];
	else
		memcpy(ne, be, n);
}

/* EVP_PKEY_fromdata of `type`; `check` runs OpenSSL's public-key check too
 * (a point on its curve). RSA never gets it: for RSA OpenSSL 3 runs the
 * SP 800-56B checks, whose primality test of n costs ~190 ms for an 8192-bit
 * modulus and adds nothing to a signature check (size, odd n and a sane e
 * are checked by tk_jwk_rsa). Private keys are checked by the signer as a
 * whole (EVP_PKEY_check) after import. */
static EVP_PKEY *fromdata(const char *type, OSSL_PARAM *params, tk_jwk_part part, int check,
                          char *why, size_t wl)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY_CTX *chk = NULL;
	EVP_PKEY *pk = NULL;
	int selection = part == TK_JWK_PRIVATE ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY;

	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pk, selection, params) != 1) {
		tk_seterr(why, wl, "JWK does not describe a valid %s %s key", type,
		       part == TK_JWK_PRIVATE ? "private" : "public");
		goto fail;
	}
	if (check) {
		chk = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
		if (chk == NULL || EVP_PKEY_public_check(chk) != 1) {
			tk_seterr(why, wl, "JWK does not describe a valid %s public key (check failed)",
			       type);
			goto fail;
		}
	}
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return pk;
fail:
	ERR_clear_error();
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return NULL;
}

/* The crv member must be exactly `want`. */
static int crv_is(json_t *o, const char *kty, const char *want, const char *alg, char *why,
                  size_t wl)
{
	const char *crv = json_string_value(json_object_get(o, "crv"));

	if (crv != NULL && strcmp(crv, want) == 0)
		return 1;
	tk_seterr(why, wl, "JWK %s curve \"%.16s\" is not supported (only %s, for %s)", kty,
	       crv ? crv : "(none)", want, alg);
	return 0;
}

EVP_PKEY *tk_jwk_ec(json_t *o, tk_jwk_part part, char *why, size_t wl)
{
	tk_jwk_bytes x = { 0 }, y = { 0 }, d = { 0 };
	unsigned char pub[1 + 2 * TK_JWK_P256_LEN], dn[TK_JWK_P256_LEN];
	char group[] = "prime256v1";
	EVP_PKEY *pk = NULL;

	if (!crv_is(o, "EC", "P-256", "ES256", why, wl))
		return NULL;
	if (tk_jwk_member(o, "x", TK_JWK_P256_LEN, TK_JWK_P256_LEN, &x, why, wl) != 0 ||
	    tk_jwk_member(o, "y", TK_JWK_P256_LEN, TK_JWK_P256_LEN, &y, why, wl) != 0 ||
	    (part == TK_JWK_PRIVATE &&
	     tk_jwk_member(o, "d", TK_JWK_P256_LEN, TK_JWK_P256_LEN, &d, why, wl) != 0))
		goto done;
	pub[0] = 0x04;
	memcpy(pub + 1, x.p, TK_JWK_P256_LEN);
	memcpy(pub + 1 + TK_JWK_P256_LEN, y.p, TK_JWK_P256_LEN);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)),
		OSSL_PARAM_construct_end(),
		OSSL_PARAM_construct_end(),
	};
	if (part == TK_JWK_PRIVATE) {
		tk_jwk_be_to_native(d.p, TK_JWK_P256_LEN, dn);
		params[2] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, dn, sizeof(dn));
	}
	pk = fromdata("EC", params, part, part == TK_JWK_PUBLIC, why, wl);
done:
	tk_wipe(dn, sizeof(dn));
	tk_jwk_bytes_release(&x);
	tk_jwk_bytes_release(&y);
	tk_jwk_bytes_release(&d);
	return pk;
}

EVP_PKEY *tk_jwk_okp(json_t *o, tk_jwk_part part, char *why, size_t wl)
{
	tk_jwk_bytes x = { 0 }, d = { 0 };
	unsigned char pub[TK_JWK_ED25519_LEN];
	size_t publen = sizeof(pub);
	EVP_PKEY *pk = NULL;

	if (!crv_is(o, "OKP", "Ed25519", "EdDSA", why, wl))
		return NULL;
	if (tk_jwk_member(o, "x", TK_JWK_ED25519_LEN, TK_JWK_ED25519_LEN, &x, why, wl) != 0)
		goto done;
	if (part == TK_JWK_PUBLIC) {
		pk = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x.p, x.len);
		if (pk == NULL)
			tk_seterr(why, wl, "JWK does not describe a valid Ed25519 public key");
		goto done;
	}
	if (tk_jwk_member(o, "d", TK_JWK_ED25519_LEN, TK_JWK_ED25519_LEN, &d, why, wl) != 0)
		goto done;
	pk = EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, d.p, d.len);
	if (pk == NULL) {
		tk_seterr(why, wl, "JWK does not describe a valid Ed25519 key");
		goto done;
	}
	if (EVP_PKEY_get_raw_public_key(pk, pub, &publen) != 1 || publen != TK_JWK_ED25519_LEN ||
	    memcmp(pub, x.p, TK_JWK_ED25519_LEN) != 0) {
		tk_seterr(why, wl, "JWK public key \"x\" does not match its private key \"d\"");
		EVP_PKEY_free(pk);
		pk = NULL;
	}
done:
	ERR_clear_error();
	tk_jwk_bytes_release(&x);
	tk_jwk_bytes_release(&d);
	return pk;
}

/* Strip leading zero octets: the value, not its encoding. */
static void strip_zeros(tk_jwk_bytes *b)
{
	size_t z = 0;

	while (b->len - z > 1 && b->p[z] == 0)
		z++;
	if (z > 0) {
		memmove(b->p, b->p + z, b->len - z);
		b->len -= z;
	}
}

EVP_PKEY *tk_jwk_rsa(json_t *o, tk_jwk_part part, char *why, size_t wl)
{
	static const char *const pub_ossl[2] = { OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E };
	enum { MAXM = 2 + TK_JWK_RSA_PRIV_COUNT };
	tk_jwk_bytes raw[MAXM], nat[MAXM];
	OSSL_PARAM params[MAXM + 1];
	size_t count = part == TK_JWK_PRIVATE ? MAXM : 2;
	EVP_PKEY *pk = NULL;
	size_t bits;

	memset(raw, 0, sizeof(raw));
	memset(nat, 0, sizeof(nat));
	if (json_object_get(o, "oth") != NULL) {
		tk_seterr(why, wl, "multi-prime RSA keys (\"oth\") are not supported");
		return NULL;
	}
	/* n may carry one leading zero octet from some encoders. */
	if (tk_jwk_member(o, "n", 0, TK_JWK_RSA_MAX_BYTES + 1, &raw[0], why, wl) != 0 ||
	    tk_jwk_member(o, "e", 0, RSA_E_MAX_BYTES, &raw[1], why, wl) != 0)
		goto done;
	strip_zeros(&raw[0]);
	strip_zeros(&raw[1]);
	bits = raw[0].len * 8;
	for (unsigned char top = raw[0].p[0]; bits > 0 && !(top & 0x80); top = (unsigned char)(top << 1))
		bits--;
	if (bits < TK_JWK_RSA_MIN_BITS || bits > TK_JWK_RSA_MAX_BITS) {
		tk_seterr(why, wl, "RSA modulus of %zu bits (accepted: %d..%d)", bits,
		       TK_JWK_RSA_MIN_BITS, TK_JWK_RSA_MAX_BITS);
		goto done;
	}
	if ((raw[0].p[raw[0].len - 1] & 1) == 0) {
		tk_seterr(why, wl, "RSA modulus must be odd");
		goto done;
	}
	if ((raw[1].p[raw[1].len - 1] & 1) == 0 || (raw[1].len == 1 && raw[1].p[0] < 3)) {
		tk_seterr(why, wl, "RSA public exponent must be odd and at least 3");
		goto done;
	}
	for (size_t i = 2; i < count; i++) {
		if (tk_jwk_member(o, tk_jwk_rsa_private[i - 2], 0, TK_JWK_RSA_MAX_BYTES, &raw[i], why,
		                  wl) != 0)
			goto done;
	}
	for (size_t i = 0; i < count; i++) {
		nat[i].p = malloc(raw[i].len);
		if (nat[i].p == NULL) {
			tk_seterr(why, wl, "out of memory");
			goto done;
		}
		nat[i].len = raw[i].len;
		tk_jwk_be_to_native(raw[i].p, raw[i].len, nat[i].p);
		params[i] = OSSL_PARAM_construct_BN(i < 2 ? pub_ossl[i] : tk_jwk_rsa_private_ossl[i - 2],
		                                    nat[i].p, nat[i].len);
	}
	params[count] = OSSL_PARAM_construct_end();
	pk = fromdata("RSA", params, part, 0, why, wl);
done:
	for (size_t i = 0; i < MAXM; i++) {
		tk_jwk_bytes_release(&raw[i]);
		tk_jwk_bytes_release(&nat[i]);
	}
	return pk;
}
