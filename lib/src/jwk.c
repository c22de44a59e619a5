/*
 * jwk.c - JWK members -> OpenSSL EVP_PKEY, for the signer and the verifier
 * and back: EVP_PKEY -> canonical JWK members -> JSON (the contract and the
 * policy are in jwk.h).
 */
#include "internal.h"
#include "jwk.h"
#include "tokend/crypto.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
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

/*
 * Small-order Ed25519 public keys. An encoding is y (255 bits, little-endian)
 * with bit 255 the sign of x. The torsion subgroup of edwards25519
 * (-x^2 + y^2 = 1 + d x^2 y^2 over p = 2^255 - 19) has 8 points, and they
 * have 5 distinct y values:
 *   order 1: (0, 1)             y = 1
 *   order 2: (0, -1)            y = p - 1
 *   order 4: (+-sqrt(-1), 0)    y = 0
 *   order 8: doubling gives y' = (x^2 + y^2) / (1 - d x^2 y^2); an order-8
 *            point doubles to an order-4 point (y' = 0), so y^2 = -x^2 and,
 *            on the curve, d x^4 - 2 x^2 - 1 = 0: x^2 = (1 +- sqrt(1 + d)) / d
 *            has square roots for one sign only, giving four points with
 *            y = +-sqrt(-1) x, i.e. y = Y8 and y = p - Y8 (two x each).
 * (Derived with a short script and checked by adding each point to itself
 * until the identity.) A key whose y is one of the five, whatever its sign
 * bit (x = 0 with the bit set is a non-canonical form of orders 1 and 2), is
 * refused: any "signature" verifies against it for some messages, and
 * several encodings name the same key. So is y >= p (non-canonical: 19
 * encodings alias y = 0..18), which RFC 8032 §5.1.3 decoding refuses too.
 */
static const unsigned char ED25519_SMALL_ORDER_Y[][TK_JWK_ED25519_LEN] = {
	{ 0x01 },                                                           /* 1 */
	{ 0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  /* p - 1 */
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f },
	{ 0x00 },                                                           /* 0 */
	{ 0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4,  /* Y8 */
	  0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6,
	  0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05 },
	{ 0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b,  /* p - Y8 */
	  0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39,
	  0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a },
};

/* 1 when the 32-byte encoding is a small-order point or has y >= p. */
static int ed25519_weak(const unsigned char x[TK_JWK_ED25519_LEN])
{
	unsigned char y[TK_JWK_ED25519_LEN];
	int ge_p = 1;

	memcpy(y, x, TK_JWK_ED25519_LEN);
	y[TK_JWK_ED25519_LEN - 1] &= 0x7f;                 /* drop the sign of x */
	/* p = 0x7fff...ffed: y >= p iff the top byte is 0x7f, the middle ones
	 * 0xff and the lowest >= 0xed. */
	if (y[TK_JWK_ED25519_LEN - 1] != 0x7f || y[0] < 0xed)
		ge_p = 0;
	for (size_t i = 1; ge_p && i < TK_JWK_ED25519_LEN - 1; i++)
		if (y[i] != 0xff)
			ge_p = 0;
	if (ge_p)
		return 1;
	for (size_t i = 0; i < sizeof(ED25519_SMALL_ORDER_Y) / sizeof(ED25519_SMALL_ORDER_Y[0]); i++)
		if (memcmp(y, ED25519_SMALL_ORDER_Y[i], TK_JWK_ED25519_LEN) == 0)
			return 1;
	return 0;
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
	if (ed25519_weak(x.p)) {
		tk_seterr(why, wl, "JWK does not describe a valid Ed25519 public key (a small-order "
		          "point or a non-canonical encoding)");
		goto done;
	}
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

/* ------------------------------------------------------------------------ */
/* EVP_PKEY -> canonical JWK members                                        */

static char *b64_alloc(const unsigned char *p, size_t n)
{
	char *out = malloc(tk_b64url_encoded_len(n) + 1);

	if (out != NULL)
		tk_b64url_encode(p, n, out);
	return out;
}

/* base64url of a big-endian integer: `pad` > 0 gives exactly pad bytes
 * (EC coordinates and scalars), 0 gives the minimal base64urlUInt form. */
static char *bn_b64(const BIGNUM *bn, int pad)
{
	int n = pad > 0 ? pad : BN_num_bytes(bn);
	unsigned char *buf;
	char *out = NULL;

	if (n <= 0)
		n = 1;            /* zero is one zero octet ("AA") */
	if (n > TK_JWK_RSA_MAX_BYTES + 1)
		return NULL;
	buf = calloc(1, (size_t)n);
	if (buf == NULL)
		return NULL;
	if (BN_bn2binpad(bn, buf, n) == n)
		out = b64_alloc(buf, (size_t)n);
	tk_wipe(buf, (size_t)n);
	free(buf);
	return out;
}

/* An integer parameter of `pk` as base64url (see bn_b64), or NULL. */
static char *param_b64(const EVP_PKEY *pk, const char *name, int pad)
{
	BIGNUM *bn = NULL;
	char *out = NULL;

	if (EVP_PKEY_get_bn_param(pk, name, &bn) == 1)
		out = bn_b64(bn, pad);
	BN_clear_free(bn);
	return out;
}

void tk_jwk_parts_release(tk_jwk_parts *p)
{
	free(p->x);
	free(p->y);
	free(p->n);
	free(p->e);
	for (size_t i = 0; i < TK_JWK_RSA_PRIV_COUNT; i++)
		tk_secret_free(p->priv[i]);
	memset(p, 0, sizeof(*p));
}

/* A kid may be any printable ASCII except '"' and '\' (so it never needs
 * JSON escaping), 1..TK_KID_MAX characters. */
int tk_jwk_kid_ok(const char *kid)
{
	size_t len = strlen(kid);

	if (len == 0 || len > TK_KID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)kid[i];
		if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
			return 0;
	}
	return 1;
}

/* Build {"name":"value",...} in a single allocation (no realloc, so no
 * stray copies of private values are left in freed memory). */
char *tk_jwk_members_json(const tk_jwk_member_t *m, size_t count)
{
	size_t len = 2, o = 0;
	char *out;

	for (size_t i = 0; i < count; i++)
		len += strlen(m[i].name) + strlen(m[i].value) + 6;
	out = malloc(len + 1);
	if (out == NULL)
		return NULL;
	out[o++] = '{';
	for (size_t i = 0; i < count; i++) {
		size_t ln = strlen(m[i].name), lv = strlen(m[i].value);
		if (i > 0)
			out[o++] = ',';
		out[o++] = '"';
		memcpy(out + o, m[i].name, ln);
		o += ln;
		out[o++] = '"';
		out[o++] = ':';
		out[o++] = '"';
		memcpy(out + o, m[i].value, lv);
		o += lv;
		out[o++] = '"';
	}
	out[o++] = '}';
	out[o] = '\0';
	return out;
}

/* The JWK of `p` with kid, alg and use; private members only if asked. */
char *tk_jwk_parts_json(const tk_jwk_parts *p, const char *kid, int with_private)
{
	tk_jwk_member_t m[16];
	size_t k = 0;

	switch (p->kty) {
	case TK_KTY_EC:
		m[k++] = (tk_jwk_member_t){ "kty", "EC" };
		m[k++] = (tk_jwk_member_t){ "crv", "P-256" };
		m[k++] = (tk_jwk_member_t){ "x", p->x };
		m[k++] = (tk_jwk_member_t){ "y", p->y };
		if (with_private)
			m[k++] = (tk_jwk_member_t){ "d", p->priv[0] };
		break;
	case TK_KTY_OKP:
		m[k++] = (tk_jwk_member_t){ "kty", "OKP" };
		m[k++] = (tk_jwk_member_t){ "crv", "Ed25519" };
		m[k++] = (tk_jwk_member_t){ "x", p->x };
		if (with_private)
			m[k++] = (tk_jwk_member_t){ "d", p->priv[0] };
		break;
	case TK_KTY_RSA:
		m[k++] = (tk_jwk_member_t){ "kty", "RSA" };
		m[k++] = (tk_jwk_member_t){ "n", p->n };
		m[k++] = (tk_jwk_member_t){ "e", p->e };
		if (with_private)
			for (size_t i = 0; i < TK_JWK_RSA_PRIV_COUNT; i++)
				m[k++] = (tk_jwk_member_t){ tk_jwk_rsa_private[i], p->priv[i] };
		break;
	default:
		return NULL;
	}
	m[k++] = (tk_jwk_member_t){ "kid", kid };
	m[k++] = (tk_jwk_member_t){ "alg", p->alg_name };
	m[k++] = (tk_jwk_member_t){ "use", "sig" };
	return tk_jwk_members_json(m, k);
}

int tk_jwk_export(const EVP_PKEY *pk, tk_jwk_parts *p, char *why, size_t wl)
{
	char name[64];
	unsigned char raw[TK_JWK_ED25519_LEN];
	size_t rawlen = 0;
	int bits = EVP_PKEY_get_bits(pk);

	memset(p, 0, sizeof(*p));
	if (EVP_PKEY_is_a(pk, "EC")) {
		if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, name,
		                                   sizeof(name), NULL) != 1) {
			ERR_clear_error();
			tk_seterr(why, wl, "EC key without a named curve is not supported (only P-256)");
			return -1;
		}
		if (strcmp(name, "prime256v1") != 0 && strcmp(name, "P-256") != 0) {
			tk_seterr(why, wl, "EC curve %s is not supported (only P-256, for ES256)", name);
			return -1;
		}
		p->kty = TK_KTY_EC;
		p->alg_name = "ES256";
				p->x = param_b64(pk, OSSL_PKEY_PARAM_EC_PUB_X, TK_JWK_P256_LEN);
		p->y = param_b64(pk, OSSL_PKEY_PARAM_EC_PUB_Y, TK_JWK_P256_LEN);
		p->priv[0] = param_b64(pk, OSSL_PKEY_PARAM_PRIV_KEY, TK_JWK_P256_LEN);
		if (!p->x || !p->y || !p->priv[0])
			goto export_failed;
	} else if (EVP_PKEY_is_a(pk, "ED25519")) {
		p->kty = TK_KTY_OKP;
		p->alg_name = "EdDSA";
				if (EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, raw, sizeof(raw),
		                                    &rawlen) != 1 || rawlen != TK_JWK_ED25519_LEN)
			goto export_failed;
		p->x = b64_alloc(raw, rawlen);
		if (EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, raw, sizeof(raw),
		                                    &rawlen) != 1 || rawlen != TK_JWK_ED25519_LEN) {
			tk_wipe(raw, sizeof(raw));
			goto export_failed;
		}
		p->priv[0] = b64_alloc(raw, rawlen);
		tk_wipe(raw, sizeof(raw));
		if (!p->x || !p->priv[0])
			goto export_failed;
	} else if (EVP_PKEY_is_a(pk, "RSA")) {
		BIGNUM *third = NULL;
		if (bits < TK_JWK_RSA_MIN_BITS) {
			tk_seterr(why, wl, "RSA key has %d bits; at least %d are required", bits,
			       TK_JWK_RSA_MIN_BITS);
			return -1;
		}
		if (bits > TK_JWK_RSA_MAX_BITS) {
			tk_seterr(why, wl, "RSA key has %d bits; at most %d are supported", bits,
			       TK_JWK_RSA_MAX_BITS);
			return -1;
		}
		if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_FACTOR3, &third) == 1) {
			BN_clear_free(third);
			tk_seterr(why, wl, "multi-prime RSA keys are not supported");
			return -1;
		}
		ERR_clear_error();
		p->kty = TK_KTY_RSA;
		p->alg_name = "RS256";
				p->n = param_b64(pk, OSSL_PKEY_PARAM_RSA_N, 0);
		p->e = param_b64(pk, OSSL_PKEY_PARAM_RSA_E, 0);
		if (!p->n || !p->e)
			goto export_failed;
		for (size_t i = 0; i < TK_JWK_RSA_PRIV_COUNT; i++) {
			p->priv[i] = param_b64(pk, tk_jwk_rsa_private_ossl[i], 0);
			if (p->priv[i] == NULL) {
				tk_jwk_parts_release(p);
				ERR_clear_error();
				tk_seterr(why, wl, "RSA private key lacks its CRT parameters "
				       "(p, q, dp, dq, qi)");
				return -1;
			}
		}
	} else {
		const char *t = EVP_PKEY_get0_type_name(pk);
		tk_seterr(why, wl, "%s keys are not supported (use EC P-256, Ed25519 or RSA >= 2048)",
		       t ? t : "this type of");
		return -1;
	}
	return 0;

export_failed:
	tk_jwk_parts_release(p);
	ERR_clear_error();
	tk_seterr(why, wl, "cannot read the key's parameters (no private key?)");
	return -1;
}
