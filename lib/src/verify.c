/*
 * verify.c - offline verification of access tokens against a JWK Set.
 *
 * The JWKS is parsed once into OpenSSL EVP_PKEYs (our own strict JWK
 * parser; libjwt is not involved). For ES256 and RS256 each key also gets a
 * template EVP_PKEY_CTX, initialised for verification with SHA-256 once;
 * a verification duplicates the template (no provider fetch, no lock) and
 * checks the signature over a SHA-256 digest computed with an EVP_MD fetched
 * once. EdDSA needs the one-shot EVP_DigestVerify: each key keeps an
 * initialised EVP_MD_CTX template that a verification copies.
 *
 * Nothing in the verifier is written by tk_verify: the templates are only
 * read (EVP_PKEY_CTX_dup takes references with atomic counters), so one
 * verifier serves any number of threads.
 *
 * Every check that needs only the token text (length, segments, canonical
 * base64url, header JSON, alg / typ / kid / forbidden header parameters)
 * runs before any signature work; the payload is parsed only once the
 * signature has verified.
 */
#include "tokend/verify.h"
#include "tokend/crypto.h"
#include "tokend/scope.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#define P256_LEN        32
#define ED25519_LEN     32
#define ES256_SIG_LEN   64
#define EDDSA_SIG_LEN   64
#define RSA_MIN_BITS    2048
#define RSA_MAX_BITS    8192
#define RSA_MAX_BYTES   (RSA_MAX_BITS / 8)
#define RSA_E_MAX_BYTES 8
#define SHA256_LEN      32

enum valg { ALG_ES256 = 0, ALG_EDDSA, ALG_RS256, ALG_COUNT };

static const char *const ALG_NAME[ALG_COUNT] = { "ES256", "EdDSA", "RS256" };
#define ALG_ALL ((1u << ALG_COUNT) - 1u)

struct vkey {
	char *kid;
	enum valg alg;
	size_t sig_len;         /* exact signature length in bytes */
	EVP_PKEY *pk;
	EVP_PKEY_CTX *tmpl;     /* ES256 / RS256: verify-initialised template */
	EVP_MD_CTX *ed_tmpl;    /* EdDSA: DigestVerify-initialised template */
};

struct tk_verifier {
	struct vkey *keys;
	size_t nkeys;
	char *issuer;
	char *audience;
	tk_scopes scopes;
	long leeway;
	unsigned algs;          /* bit mask of enum valg */
	EVP_MD *sha256;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

__attribute__((format(printf, 3, 4)))
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Like seterr, and return `code` (for the verify path). */
__attribute__((format(printf, 4, 5)))
static int reject(int code, char *err, size_t errlen, const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

static char *dupstr(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);

	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

/* ASCII case-insensitive equality (strcasecmp depends on the locale). */
static int ascii_ieq(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned char ca = (unsigned char)*a, cb = (unsigned char)*b;
		if (ca >= 'A' && ca <= 'Z')
			ca = (unsigned char)(ca - 'A' + 'a');
		if (cb >= 'A' && cb <= 'Z')
			cb = (unsigned char)(cb - 'A' + 'a');
		if (ca != cb)
			return 0;
		if (ca == '\0')
			return 1;
	}
}

static int alg_from_name(const char *s, enum valg *out)
{
	for (int i = 0; i < ALG_COUNT; i++) {
		if (strcmp(s, ALG_NAME[i]) == 0) {
			*out = (enum valg)i;
			return 0;
		}
	}
	return -1;
}

/*
 * 1 if the JSON text p[0..n) never nests objects/arrays deeper than `max`.
 * Brackets inside strings do not count. The text is not otherwise checked
 * (jansson does that next); this only bounds jansson's recursion.
 */
static int json_depth_ok(const char *p, size_t n, int max)
{
	int depth = 0;
	bool in_str = false;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			if (++depth > max)
				return 0;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return 1;
}

/* Parse a JSON object strictly: explicit length, no duplicate members,
 * bounded depth, nothing after it. NULL if it is anything else. */
static json_t *load_object(const char *p, size_t n)
{
	json_error_t jerr;
	json_t *o;

	if (n == 0 || !json_depth_ok(p, n, TK_VERIFY_JSON_DEPTH))
		return NULL;
	o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
	if (o != NULL && !json_is_object(o)) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

/* ------------------------------------------------------------------------ */
/* JWK Set                                                                  */

static void key_release(struct vkey *k)
{
	free(k->kid);
	EVP_PKEY_CTX_free(k->tmpl);
	EVP_MD_CTX_free(k->ed_tmpl);
	EVP_PKEY_free(k->pk);
	memset(k, 0, sizeof(*k));
}

static void keys_free(struct vkey *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		key_release(&keys[i]);
	free(keys);
}

/* Decode base64url member `name` of `o` into a fresh buffer; `exact` > 0
 * requires that length, else 1..max bytes. 0 or -1 with why set. */
static int member_bytes(json_t *o, const char *name, size_t exact, size_t max,
                        unsigned char **out, size_t *outlen, char *why, size_t wl)
{
	json_t *v = json_object_get(o, name);
	const char *s = json_string_value(v);
	size_t slen;
	long n;

	*out = NULL;
	*outlen = 0;
	if (v == NULL) {
		seterr(why, wl, "member \"%s\" is missing", name);
		return -1;
	}
	if (s == NULL) {
		seterr(why, wl, "member \"%s\" is not a string", name);
		return -1;
	}
	slen = json_string_length(v);
	if (slen == 0 || slen > (max / 3 + 1) * 4) {
		seterr(why, wl, "member \"%s\" has a bad length", name);
		return -1;
	}
	*out = malloc(slen / 4 * 3 + 3);
	if (*out == NULL) {
		seterr(why, wl, "out of memory");
		return -1;
	}
	n = tk_b64url_decode(s, slen, *out);
	if (n <= 0 || (exact > 0 && (size_t)n != exact) || (size_t)n > max) {
		free(*out);
		*out = NULL;
		if (n <= 0)
			seterr(why, wl, "member \"%s\" is not canonical base64url", name);
		else
			seterr(why, wl, "member \"%s\" is %ld bytes, expected %zu", name, n,
			       exact > 0 ? exact : max);
		return -1;
	}
	*outlen = (size_t)n;
	return 0;
}

/* Reverse big-endian bytes into native order for OSSL_PARAM_construct_BN. */
static void to_native(const unsigned char *be, size_t n, unsigned char *ne)
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

/* `check`: run OpenSSL's public-key validation too (a point on its curve).
 * RSA skips it: for an RSA key, OpenSSL 3 runs the SP 800-56B checks, whose
 * primality test of n costs ~190 ms for an 8192-bit modulus - a JWKS of such
 * keys would stall a resource server for seconds - and adds nothing to a
 * signature check; size, odd n and a sane e are checked by the caller. */
static EVP_PKEY *public_fromdata(const char *type, OSSL_PARAM *params, int check, char *why, size_t wl)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY_CTX *chk = NULL;
	EVP_PKEY *pk = NULL;

	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		seterr(why, wl, "not a valid %s public key", type);
		goto fail;
	}
	if (!check)
		goto done;
	chk = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	if (chk == NULL || EVP_PKEY_public_check(chk) != 1) {
		seterr(why, wl, "not a valid %s public key (check failed)", type);
		goto fail;
	}
done:
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_CTX_free(ctx);
	return pk;
fail:
	ERR_clear_error();
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return NULL;
}

static EVP_PKEY *jwk_ec(json_t *o, char *why, size_t wl)
{
	unsigned char *x = NULL, *y = NULL, pub[1 + 2 * P256_LEN];
	size_t xl, yl;
	char group[] = "prime256v1";
	EVP_PKEY *pk = NULL;

	if (member_bytes(o, "x", P256_LEN, P256_LEN, &x, &xl, why, wl) != 0 ||
	    member_bytes(o, "y", P256_LEN, P256_LEN, &y, &yl, why, wl) != 0)
		goto done;
	pub[0] = 0x04;
	memcpy(pub + 1, x, P256_LEN);
	memcpy(pub + 1 + P256_LEN, y, P256_LEN);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)),
		OSSL_PARAM_construct_end(),
	};
	pk = public_fromdata("EC", params, 1, why, wl);
done:
	free(x);
	free(y);
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
static const unsigned char ED25519_SMALL_ORDER_Y[][ED25519_LEN] = {
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
static int ed25519_weak(const unsigned char x[ED25519_LEN])
{
	unsigned char y[ED25519_LEN];
	int ge_p = 1;

	memcpy(y, x, ED25519_LEN);
	y[ED25519_LEN - 1] &= 0x7f;                 /* drop the sign of x */
	/* p = 0x7fff...ffed: y >= p iff the top byte is 0x7f, the middle ones
	 * 0xff and the lowest >= 0xed. */
	if (y[ED25519_LEN - 1] != 0x7f || y[0] < 0xed)
		ge_p = 0;
	for (size_t i = 1; ge_p && i < ED25519_LEN - 1; i++)
		if (y[i] != 0xff)
			ge_p = 0;
	if (ge_p)
		return 1;
	for (size_t i = 0; i < sizeof(ED25519_SMALL_ORDER_Y) / sizeof(ED25519_SMALL_ORDER_Y[0]); i++)
		if (memcmp(y, ED25519_SMALL_ORDER_Y[i], ED25519_LEN) == 0)
			return 1;
	return 0;
}

static EVP_PKEY *jwk_okp(json_t *o, char *why, size_t wl)
{
	unsigned char *x = NULL;
	size_t xl;
	EVP_PKEY *pk = NULL;

	if (member_bytes(o, "x", ED25519_LEN, ED25519_LEN, &x, &xl, why, wl) != 0)
		return NULL;
	if (ed25519_weak(x)) {
		seterr(why, wl, "not a valid Ed25519 public key (a small-order point or a non-canonical encoding)");
		free(x);
		return NULL;
	}
	pk = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, xl);
	if (pk == NULL) {
		ERR_clear_error();
		seterr(why, wl, "not a valid Ed25519 public key");
	}
	free(x);
	return pk;
}

static EVP_PKEY *jwk_rsa(json_t *o, char *why, size_t wl)
{
	unsigned char *n = NULL, *e = NULL, *nn = NULL, *ne = NULL;
	size_t nl = 0, el = 0;
	EVP_PKEY *pk = NULL;
	size_t bits;

	/* n may carry one leading zero octet from some encoders. */
	if (member_bytes(o, "n", 0, RSA_MAX_BYTES + 1, &n, &nl, why, wl) != 0 ||
	    member_bytes(o, "e", 0, RSA_E_MAX_BYTES, &e, &el, why, wl) != 0)
		goto done;
	const unsigned char *np = n;
	size_t npl = nl;
	while (npl > 0 && np[0] == 0) {
		np++;
		npl--;
	}
	bits = npl == 0 ? 0 : npl * 8;
	for (unsigned char top = npl ? np[0] : 0; top != 0 && !(top & 0x80); top <<= 1)
		bits--;
	if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
		seterr(why, wl, "RSA modulus of %zu bits (accepted: %d..%d)", bits, RSA_MIN_BITS,
		       RSA_MAX_BITS);
		goto done;
	}
	if ((np[npl - 1] & 1) == 0) {
		seterr(why, wl, "RSA modulus must be odd");
		goto done;
	}
	while (el > 1 && e[0] == 0) {       /* value of e, not its encoding */
		memmove(e, e + 1, el - 1);
		el--;
	}
	if ((e[el - 1] & 1) == 0 || (el == 1 && e[0] < 3)) {
		seterr(why, wl, "RSA public exponent must be odd and at least 3");
		goto done;
	}
	nn = malloc(npl);
	ne = malloc(el);
	if (nn == NULL || ne == NULL) {
		seterr(why, wl, "out of memory");
		goto done;
	}
	to_native(np, npl, nn);
	to_native(e, el, ne);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_N, nn, npl),
		OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_E, ne, el),
		OSSL_PARAM_construct_end(),
	};
	pk = public_fromdata("RSA", params, 0, why, wl);
done:
	free(n);
	free(e);
	free(nn);
	free(ne);
	return pk;
}

/* The verify-initialised template context of an ES256 / RS256 key. */
static EVP_PKEY_CTX *make_template(EVP_PKEY *pk, enum valg alg, const EVP_MD *md)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);

	if (c == NULL || EVP_PKEY_verify_init(c) != 1 ||
	    (alg == ALG_RS256 && EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) != 1) ||
	    EVP_PKEY_CTX_set_signature_md(c, md) != 1) {
		EVP_PKEY_CTX_free(c);
		ERR_clear_error();
		return NULL;
	}
	return c;
}

/* Outcome of parsing one JWKS entry. */
enum entry { ENTRY_USE, ENTRY_SKIP, ENTRY_FAIL };

/* Private or symmetric members that must never appear in a published JWKS. */
static const char *const PRIVATE_MEMBERS[] = { "d", "p", "q", "dp", "dq", "qi", "oth", "k" };

static enum entry parse_entry(json_t *o, const EVP_MD *md, struct vkey *k, char *why, size_t wl)
{
	const char *kty, *crv, *alg_s, *use, *kid;
	json_t *v;
	enum valg implied = ALG_ES256;
	bool have_implied = false;

	memset(k, 0, sizeof(*k));
	if (!json_is_object(o)) {
		seterr(why, wl, "not a JSON object");
		return ENTRY_FAIL;
	}
	kty = json_string_value(json_object_get(o, "kty"));
	if (kty == NULL) {
		seterr(why, wl, "no string \"kty\"");
		return ENTRY_FAIL;
	}
	for (size_t i = 0; i < sizeof(PRIVATE_MEMBERS) / sizeof(PRIVATE_MEMBERS[0]); i++) {
		if (json_object_get(o, PRIVATE_MEMBERS[i]) != NULL) {
			seterr(why, wl, "holds private or symmetric key material (\"%s\"); "
			       "a JWKS must publish public keys only", PRIVATE_MEMBERS[i]);
			return ENTRY_FAIL;
		}
	}
	if (strcmp(kty, "oct") == 0) {
		seterr(why, wl, "symmetric key (kty \"oct\") in a JWKS");
		return ENTRY_FAIL;
	}

	/* Keys meant for something else are legitimate neighbours: skip them. */
	v = json_object_get(o, "use");
	if (v != NULL) {
		use = json_string_value(v);
		if (use == NULL) {
			seterr(why, wl, "\"use\" is not a string");
			return ENTRY_FAIL;
		}
		if (strcmp(use, "sig") != 0)
			return ENTRY_SKIP;
	}
	v = json_object_get(o, "key_ops");
	if (v != NULL) {
		size_t i;
		json_t *op;
		bool verify = false;
		if (!json_is_array(v)) {
			seterr(why, wl, "\"key_ops\" is not an array");
			return ENTRY_FAIL;
		}
		json_array_foreach(v, i, op) {
			if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
				verify = true;
		}
		if (!verify)
			return ENTRY_SKIP;
	}

	crv = json_string_value(json_object_get(o, "crv"));
	if (strcmp(kty, "EC") == 0) {
		if (crv != NULL && strcmp(crv, "P-256") == 0) {
			implied = ALG_ES256;
			have_implied = true;
		}
	} else if (strcmp(kty, "OKP") == 0) {
		if (crv != NULL && strcmp(crv, "Ed25519") == 0) {
			implied = ALG_EDDSA;
			have_implied = true;
		}
	} else if (strcmp(kty, "RSA") == 0) {
		implied = ALG_RS256;
		have_implied = true;
	}

	v = json_object_get(o, "alg");
	if (v != NULL) {
		enum valg named;
		alg_s = json_string_value(v);
		if (alg_s == NULL) {
			seterr(why, wl, "\"alg\" is not a string");
			return ENTRY_FAIL;
		}
		if (alg_from_name(alg_s, &named) != 0)
			return ENTRY_SKIP;          /* another algorithm: not for us */
		if (!have_implied || implied != named) {
			seterr(why, wl, "\"alg\" %s does not fit this key (kty \"%.8s\"%s%.16s%s)",
			       ALG_NAME[named], kty, crv ? ", crv \"" : "", crv ? crv : "",
			       crv ? "\"" : "");
			return ENTRY_FAIL;
		}
	} else if (!have_implied) {
		return ENTRY_SKIP;                  /* a kind of key we do not verify with */
	}

	v = json_object_get(o, "kid");
	kid = json_string_value(v);
	if (v == NULL || kid == NULL) {
		seterr(why, wl, "no string \"kid\"");
		return ENTRY_FAIL;
	}
	if (json_string_length(v) == 0 || json_string_length(v) > TK_VERIFY_KID_MAX ||
	    strlen(kid) != json_string_length(v)) {
		seterr(why, wl, "\"kid\" must be 1..%d bytes", TK_VERIFY_KID_MAX);
		return ENTRY_FAIL;
	}

	k->alg = implied;
	switch (implied) {
	case ALG_ES256:
		k->pk = jwk_ec(o, why, wl);
		k->sig_len = ES256_SIG_LEN;
		break;
	case ALG_EDDSA:
		k->pk = jwk_okp(o, why, wl);
		k->sig_len = EDDSA_SIG_LEN;
		break;
	case ALG_RS256:
		k->pk = jwk_rsa(o, why, wl);
		if (k->pk != NULL)
			k->sig_len = (size_t)EVP_PKEY_get_size(k->pk);
		break;
	default:
		break;
	}
	if (k->pk == NULL)
		return ENTRY_FAIL;
	if (implied == ALG_EDDSA) {
		k->ed_tmpl = EVP_MD_CTX_new();
		if (k->ed_tmpl == NULL ||
		    EVP_DigestVerifyInit_ex(k->ed_tmpl, NULL, NULL, NULL, NULL, k->pk, NULL) != 1) {
			ERR_clear_error();
			seterr(why, wl, "OpenSSL cannot set up verification with this key");
			key_release(k);
			return ENTRY_FAIL;
		}
	} else {
		k->tmpl = make_template(k->pk, implied, md);
		if (k->tmpl == NULL) {
			seterr(why, wl, "OpenSSL cannot set up verification with this key");
			key_release(k);
			return ENTRY_FAIL;
		}
	}
	k->kid = dupstr(kid);
	if (k->kid == NULL) {
		seterr(why, wl, "out of memory");
		key_release(k);
		return ENTRY_FAIL;
	}
	return ENTRY_USE;
}

int tk_verifier_load_jwks(tk_verifier *v, const char *json, size_t len, char *err,
                          size_t errlen)
{
	json_t *root = NULL, *arr;
	struct vkey *keys = NULL;
	size_t n = 0, count;
	char why[256];
	int rc = -1;

	if (v == NULL || json == NULL) {
		seterr(err, errlen, "no JWKS given");
		return -1;
	}
	if (len > TK_VERIFY_JWKS_MAX) {
		seterr(err, errlen, "JWKS is larger than %d bytes", TK_VERIFY_JWKS_MAX);
		return -1;
	}
	root = load_object(json, len);
	if (root == NULL) {
		seterr(err, errlen, "JWKS is not a JSON object (invalid JSON, duplicate member, "
		       "or nested deeper than %d)", TK_VERIFY_JSON_DEPTH);
		return -1;
	}
	arr = json_object_get(root, "keys");
	if (!json_is_array(arr)) {
		seterr(err, errlen, "JWKS has no \"keys\" array");
		goto done;
	}
	count = json_array_size(arr);
	if (count > TK_VERIFY_MAX_KEYS) {
		seterr(err, errlen, "JWKS has %zu keys (at most %d)", count, TK_VERIFY_MAX_KEYS);
		goto done;
	}
	keys = calloc(count ? count : 1, sizeof(*keys));
	if (keys == NULL) {
		seterr(err, errlen, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < count; i++) {
		why[0] = '\0';
		switch (parse_entry(json_array_get(arr, i), v->sha256, &keys[n], why, sizeof(why))) {
		case ENTRY_FAIL:
			seterr(err, errlen, "JWKS key %zu: %s", i, why);
			goto done;
		case ENTRY_SKIP:
			break;
		case ENTRY_USE:
			for (size_t j = 0; j < n; j++) {
				if (strcmp(keys[j].kid, keys[n].kid) == 0) {
					seterr(err, errlen, "JWKS key %zu: duplicate kid", i);
					n++;
					goto done;
				}
			}
			n++;
			break;
		}
	}
	if (n == 0) {
		seterr(err, errlen, "JWKS has no usable signing key (ES256 P-256, EdDSA Ed25519 "
		       "or RS256 RSA >= %d bits)", RSA_MIN_BITS);
		goto done;
	}
	keys_free(v->keys, v->nkeys);
	v->keys = keys;
	v->nkeys = n;
	keys = NULL;
	n = 0;
	rc = 0;
done:
	keys_free(keys, n);
	json_decref(root);
	return rc;
}

size_t tk_verifier_key_count(const tk_verifier *v)
{
	return v ? v->nkeys : 0;
}

int tk_verifier_key_at(const tk_verifier *v, size_t index, const char **kid, const char **alg)
{
	if (v == NULL || index >= v->nkeys)
		return -1;
	if (kid)
		*kid = v->keys[index].kid;
	if (alg)
		*alg = ALG_NAME[v->keys[index].alg];
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */

tk_verifier *tk_verifier_new(void)
{
	tk_verifier *v = calloc(1, sizeof(*v));

	if (v == NULL)
		return NULL;
	v->leeway = TK_VERIFY_LEEWAY_DEFAULT;
	v->algs = ALG_ALL;
	v->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (v->sha256 == NULL) {
		ERR_clear_error();
		free(v);
		return NULL;
	}
	return v;
}

void tk_verifier_free(tk_verifier *v)
{
	if (v == NULL)
		return;
	keys_free(v->keys, v->nkeys);
	free(v->issuer);
	free(v->audience);
	tk_scopes_free(&v->scopes);
	EVP_MD_free(v->sha256);
	free(v);
}

/* A string setting: non-empty, bounded, no control characters. */
static int uri_ok(const char *s, const char *what, char *err, size_t errlen)
{
	size_t n = strlen(s);

	if (n == 0 || n > TK_VERIFY_URI_MAX) {
		seterr(err, errlen, "%s must be 1..%d bytes", what, TK_VERIFY_URI_MAX);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f) {
			seterr(err, errlen, "%s contains a control character", what);
			return 0;
		}
	}
	return 1;
}

static int set_string(char **slot, const char *s, const char *what, bool optional, char *err,
                      size_t errlen)
{
	char *copy = NULL;

	if (s == NULL || *s == '\0') {
		if (!optional) {
			seterr(err, errlen, "%s is required", what);
			return -1;
		}
	} else {
		if (!uri_ok(s, what, err, errlen))
			return -1;
		copy = dupstr(s);
		if (copy == NULL) {
			seterr(err, errlen, "out of memory");
			return -1;
		}
	}
	free(*slot);
	*slot = copy;
	return 0;
}

int tk_verifier_set_issuer(tk_verifier *v, const char *issuer, char *err, size_t errlen)
{
	if (v == NULL) {
		seterr(err, errlen, "no verifier");
		return -1;
	}
	return set_string(&v->issuer, issuer, "issuer", false, err, errlen);
}

int tk_verifier_set_audience(tk_verifier *v, const char *audience, char *err, size_t errlen)
{
	if (v == NULL) {
		seterr(err, errlen, "no verifier");
		return -1;
	}
	return set_string(&v->audience, audience, "audience", true, err, errlen);
}

int tk_verifier_set_scopes(tk_verifier *v, const char *scopes, char *err, size_t errlen)
{
	tk_scopes parsed = { 0 };
	const char *why = NULL;

	if (v == NULL) {
		seterr(err, errlen, "no verifier");
		return -1;
	}
	if (scopes != NULL && *scopes != '\0' &&
	    tk_scopes_parse(scopes, strlen(scopes), &parsed, &why) != 0) {
		seterr(err, errlen, "required scopes: %s", why ? why : "invalid");
		return -1;
	}
	tk_scopes_free(&v->scopes);
	v->scopes = parsed;
	return 0;
}

int tk_verifier_set_leeway(tk_verifier *v, long seconds, char *err, size_t errlen)
{
	if (v == NULL) {
		seterr(err, errlen, "no verifier");
		return -1;
	}
	if (seconds < 0 || seconds > TK_VERIFY_LEEWAY_MAX) {
		seterr(err, errlen, "leeway must be 0..%d seconds", TK_VERIFY_LEEWAY_MAX);
		return -1;
	}
	v->leeway = seconds;
	return 0;
}

int tk_verifier_set_algorithms(tk_verifier *v, const char *algs, char *err, size_t errlen)
{
	unsigned mask = 0;
	const char *p = algs;

	if (v == NULL || algs == NULL) {
		seterr(err, errlen, "no algorithms given");
		return -1;
	}
	while (*p != '\0') {
		char name[16];
		size_t n = strcspn(p, " ");
		enum valg a;
		if (n == 0) {
			p++;
			continue;
		}
		if (n >= sizeof(name)) {
			seterr(err, errlen, "unsupported algorithm (accepted: ES256 EdDSA RS256)");
			return -1;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		if (alg_from_name(name, &a) != 0) {
			seterr(err, errlen, "unsupported algorithm \"%s\" (accepted: ES256 EdDSA RS256)",
			       name);
			return -1;
		}
		mask |= 1u << a;
		p += n;
	}
	if (mask == 0) {
		seterr(err, errlen, "no algorithms given");
		return -1;
	}
	v->algs = mask;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Verification                                                             */

void tk_claims_release(tk_claims *c)
{
	if (c == NULL)
		return;
	json_decref(c->json);
	memset(c, 0, sizeof(*c));
}

const char *tk_verify_strerror(int code)
{
	switch (code) {
	case TK_VERIFY_OK:             return "valid";
	case TK_VERIFY_EINVAL:         return "verifier not ready or invalid argument";
	case TK_VERIFY_NOMEM:          return "out of memory";
	case TK_VERIFY_TOO_LONG:       return "token too long";
	case TK_VERIFY_MALFORMED:      return "malformed token";
	case TK_VERIFY_ALG:            return "algorithm not accepted";
	case TK_VERIFY_TYP:            return "wrong token type";
	case TK_VERIFY_KID_MISSING:    return "no key id";
	case TK_VERIFY_KID_UNKNOWN:    return "unknown key id";
	case TK_VERIFY_HEADER_PARAM:   return "forbidden header parameter";
	case TK_VERIFY_CRIT:           return "critical header parameter not understood";
	case TK_VERIFY_SIGNATURE:      return "bad signature";
	case TK_VERIFY_MISSING_CLAIM:  return "missing claim";
	case TK_VERIFY_CLAIM_TYPE:     return "claim of the wrong type";
	case TK_VERIFY_EXPIRED:        return "token expired";
	case TK_VERIFY_NOT_YET_VALID:  return "token not yet valid";
	case TK_VERIFY_IAT_FUTURE:     return "token issued in the future";
	case TK_VERIFY_ISSUER:         return "wrong issuer";
	case TK_VERIFY_AUDIENCE:       return "wrong audience";
	case TK_VERIFY_SCOPE:          return "missing required scope";
	case TK_VERIFY_INTERNAL:       return "internal error";
	default:                       return "unknown error";
	}
}

/* DER INTEGER of the unsigned big-endian v[0..n) into out; returns its size
 * (at most n + 3). */
static size_t der_uint(const unsigned char *v, size_t n, unsigned char *out)
{
	size_t o = 0;

	while (n > 1 && v[0] == 0) {
		v++;
		n--;
	}
	bool pad = (v[0] & 0x80) != 0;
	out[o++] = 0x02;
	out[o++] = (unsigned char)(n + (pad ? 1 : 0));
	if (pad)
		out[o++] = 0x00;
	memcpy(out + o, v, n);
	return o + n;
}

/* ECDSA-Sig-Value DER of the raw JWS R||S (2 x 32 bytes). out >= 72 bytes. */
static size_t es256_der(const unsigned char rs[ES256_SIG_LEN], unsigned char *out)
{
	unsigned char body[2 * (P256_LEN + 3)];
	size_t bl = der_uint(rs, P256_LEN, body);

	bl += der_uint(rs + P256_LEN, P256_LEN, body + bl);
	out[0] = 0x30;
	out[1] = (unsigned char)bl;          /* < 128: short form */
	memcpy(out + 2, body, bl);
	return bl + 2;
}

/* Verify sig over input[0..n) with key k: 1 valid, 0 invalid, -1 error. */
static int check_signature(const tk_verifier *v, const struct vkey *k, const char *input,
                           size_t n, const unsigned char *sig, size_t siglen)
{
	unsigned char md[SHA256_LEN], der[2 * (P256_LEN + 3) + 2];
	unsigned int mdlen = 0;
	int ok = -1;

	if (k->alg == ALG_EDDSA) {
		/* A copy of the initialised template: no provider fetch per call. */
		EVP_MD_CTX *c = EVP_MD_CTX_new();
		if (c != NULL && EVP_MD_CTX_copy_ex(c, k->ed_tmpl) == 1)
			ok = EVP_DigestVerify(c, sig, siglen, (const unsigned char *)input, n) == 1;
		EVP_MD_CTX_free(c);
		ERR_clear_error();
		return ok;
	}
	if (EVP_Digest(input, n, md, &mdlen, v->sha256, NULL) != 1 || mdlen != SHA256_LEN) {
		ERR_clear_error();
		return -1;
	}
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_dup(k->tmpl);
	if (c == NULL) {
		ERR_clear_error();
		return -1;
	}
	if (k->alg == ALG_ES256) {
		size_t dl = es256_der(sig, der);
		ok = EVP_PKEY_verify(c, der, dl, md, sizeof(md)) == 1;
	} else {
		ok = EVP_PKEY_verify(c, sig, siglen, md, sizeof(md)) == 1;
	}
	EVP_PKEY_CTX_free(c);
	ERR_clear_error();
	return ok;
}

/* A required non-empty string claim. */
static int claim_string(json_t *p, const char *name, bool required, const char **out,
                        char *err, size_t errlen)
{
	json_t *c = json_object_get(p, name);

	*out = NULL;
	if (c == NULL) {
		if (required)
			return reject(TK_VERIFY_MISSING_CLAIM, err, errlen, "claim \"%s\" is missing",
			              name);
		return TK_VERIFY_OK;
	}
	if (!json_is_string(c) || (required && json_string_length(c) == 0))
		return reject(TK_VERIFY_CLAIM_TYPE, err, errlen, "claim \"%s\" is not a %sstring",
		              name, required ? "non-empty " : "");
	*out = json_string_value(c);
	return TK_VERIFY_OK;
}

/* An integer (NumericDate) claim; *present says whether it was there. */
static int claim_int(json_t *p, const char *name, bool required, int64_t *out, bool *present,
                     char *err, size_t errlen)
{
	json_t *c = json_object_get(p, name);

	*out = 0;
	*present = c != NULL;
	if (c == NULL) {
		if (required)
			return reject(TK_VERIFY_MISSING_CLAIM, err, errlen, "claim \"%s\" is missing",
			              name);
		return TK_VERIFY_OK;
	}
	if (!json_is_integer(c))
		return reject(TK_VERIFY_CLAIM_TYPE, err, errlen,
		              "claim \"%s\" is not an integer NumericDate", name);
	*out = (int64_t)json_integer_value(c);
	return TK_VERIFY_OK;
}

/* 1 if the space-separated `have` contains the token `want`. */
static int scope_has(const char *have, const char *want)
{
	size_t wl = strlen(want);

	for (const char *p = have; *p != '\0';) {
		size_t n = strcspn(p, " ");
		if (n == wl && memcmp(p, want, n) == 0)
			return 1;
		p += n;
		while (*p == ' ')
			p++;
	}
	return 0;
}

static int check_claims(const tk_verifier *v, json_t *p, int64_t now, tk_claims *c, char *err,
                        size_t errlen)
{
	int64_t exp, iat, nbf;
	bool has_exp, has_iat, has_nbf;
	json_t *aud;
	int rc;

	if ((rc = claim_int(p, "exp", true, &exp, &has_exp, err, errlen)) != 0 ||
	    (rc = claim_int(p, "iat", true, &iat, &has_iat, err, errlen)) != 0 ||
	    (rc = claim_int(p, "nbf", false, &nbf, &has_nbf, err, errlen)) != 0 ||
	    (rc = claim_string(p, "jti", true, &c->jti, err, errlen)) != 0 ||
	    (rc = claim_string(p, "iss", true, &c->iss, err, errlen)) != 0 ||
	    (rc = claim_string(p, "sub", true, &c->sub, err, errlen)) != 0 ||
	    (rc = claim_string(p, "client_id", true, &c->client_id, err, errlen)) != 0 ||
	    (rc = claim_string(p, "scope", false, &c->scope, err, errlen)) != 0 ||
	    (rc = claim_string(p, "acct", false, &c->acct, err, errlen)) != 0)
		return rc;

	aud = json_object_get(p, "aud");
	if (aud != NULL && !json_is_string(aud)) {
		size_t i;
		json_t *a;
		if (!json_is_array(aud))
			return reject(TK_VERIFY_CLAIM_TYPE, err, errlen,
			              "claim \"aud\" is neither a string nor an array");
		json_array_foreach(aud, i, a) {
			if (!json_is_string(a))
				return reject(TK_VERIFY_CLAIM_TYPE, err, errlen,
				              "claim \"aud\" holds a non-string");
		}
	}

	if (strcmp(c->iss, v->issuer) != 0)
		return reject(TK_VERIFY_ISSUER, err, errlen, "issuer is not the expected one");

	if (v->audience != NULL) {
		bool found = false;
		if (aud == NULL)
			return reject(TK_VERIFY_MISSING_CLAIM, err, errlen, "claim \"aud\" is missing");
		if (json_is_string(aud)) {
			found = strcmp(json_string_value(aud), v->audience) == 0;
		} else {
			size_t i;
			json_t *a;
			json_array_foreach(aud, i, a) {
				if (strcmp(json_string_value(a), v->audience) == 0)
					found = true;
			}
		}
		if (!found)
			return reject(TK_VERIFY_AUDIENCE, err, errlen,
			              "audience does not include the expected one");
	}

	/* No overflow: |now| <= INT64_MAX / 2 (checked on entry), leeway <= 60. */
	if (exp <= now - v->leeway)
		return reject(TK_VERIFY_EXPIRED, err, errlen, "token expired");
	if (has_nbf && nbf > now + v->leeway)
		return reject(TK_VERIFY_NOT_YET_VALID, err, errlen, "token not valid yet (nbf)");
	if (iat > now + v->leeway)
		return reject(TK_VERIFY_IAT_FUTURE, err, errlen, "token issued in the future (iat)");

	for (size_t i = 0; i < v->scopes.n; i++) {
		if (c->scope == NULL || !scope_has(c->scope, v->scopes.v[i]))
			return reject(TK_VERIFY_SCOPE, err, errlen, "required scope \"%s\" is missing",
			              v->scopes.v[i]);
	}
	c->exp = exp;
	c->iat = iat;
	c->nbf = has_nbf ? nbf : 0;
	return TK_VERIFY_OK;
}

static const struct vkey *find_key(const tk_verifier *v, const char *kid)
{
	for (size_t i = 0; i < v->nkeys; i++)
		if (strcmp(v->keys[i].kid, kid) == 0)
			return &v->keys[i];
	return NULL;
}

/* Header checks (everything before the signature but the base64url). On
 * success *key is the key of the kid. */
static int check_header(const tk_verifier *v, json_t *h, const struct vkey **key, char *err,
                        size_t errlen)
{
	static const char *const forbidden[] = { "jku", "x5u", "jwk", "x5c" };
	json_t *alg_j = json_object_get(h, "alg");
	json_t *typ_j, *kid_j;
	const char *alg, *typ, *kid;
	enum valg a;

	*key = NULL;
	if (alg_j == NULL)
		return reject(TK_VERIFY_ALG, err, errlen, "header has no \"alg\"");
	alg = json_string_value(alg_j);
	if (alg == NULL)
		return reject(TK_VERIFY_ALG, err, errlen, "header \"alg\" is not a string");
	if (ascii_ieq(alg, "none"))
		return reject(TK_VERIFY_ALG, err, errlen, "unsigned tokens (alg none) are refused");
	if ((alg[0] == 'H' || alg[0] == 'h') && (alg[1] == 'S' || alg[1] == 's'))
		return reject(TK_VERIFY_ALG, err, errlen, "HMAC algorithms are refused");
	if (alg_from_name(alg, &a) != 0 || strlen(alg) != json_string_length(alg_j) ||
	    !(v->algs & (1u << a)))
		return reject(TK_VERIFY_ALG, err, errlen, "algorithm not allowed");

	if (json_object_get(h, "crit") != NULL)
		return reject(TK_VERIFY_CRIT, err, errlen,
		              "header has \"crit\" (no extension is understood)");
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++)
		if (json_object_get(h, forbidden[i]) != NULL)
			return reject(TK_VERIFY_HEADER_PARAM, err, errlen,
			              "header parameter \"%s\" is refused", forbidden[i]);

	typ_j = json_object_get(h, "typ");
	if (typ_j == NULL)
		return reject(TK_VERIFY_TYP, err, errlen, "header has no \"typ\" (want at+jwt)");
	typ = json_string_value(typ_j);
	if (typ == NULL || strlen(typ) != json_string_length(typ_j) ||
	    !(ascii_ieq(typ, "at+jwt") || ascii_ieq(typ, "application/at+jwt")))
		return reject(TK_VERIFY_TYP, err, errlen, "header \"typ\" is not at+jwt");

	kid_j = json_object_get(h, "kid");
	kid = json_string_value(kid_j);
	if (kid == NULL)
		return reject(TK_VERIFY_KID_MISSING, err, errlen, "header has no string \"kid\"");
	if (strlen(kid) != json_string_length(kid_j) || (*key = find_key(v, kid)) == NULL)
		return reject(TK_VERIFY_KID_UNKNOWN, err, errlen, "no key with this kid");
	if ((*key)->alg != a) {
		*key = NULL;
		return reject(TK_VERIFY_ALG, err, errlen, "\"alg\" is not the algorithm of the kid's key");
	}
	return TK_VERIFY_OK;
}

int tk_verify_at(const tk_verifier *v, const char *token, size_t len, int64_t now,
                 tk_claims *out, char *err, size_t errlen)
{
	/* Decoded header, payload and signature share one buffer: together they
	 * are at most 3/4 of the (capped) token plus a little. */
	unsigned char buf[TK_VERIFY_TOKEN_MAX];
	const char *dot1, *dot2;
	size_t hl, pl, sl;
	long hn, pn, sn;
	unsigned char *hdr, *pay, *sig;
	const struct vkey *key = NULL;
	json_t *h = NULL, *p = NULL;
	tk_claims c;
	int rc;

	memset(&c, 0, sizeof(c));
	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (v == NULL || token == NULL)
		return reject(TK_VERIFY_EINVAL, err, errlen, "no verifier or no token");
	if (now < INT64_MIN / 2 || now > INT64_MAX / 2)
		return reject(TK_VERIFY_EINVAL, err, errlen, "clock value out of range");
	if (v->issuer == NULL || v->nkeys == 0)
		return reject(TK_VERIFY_EINVAL, err, errlen, "verifier has no %s",
		              v->issuer == NULL ? "issuer" : "keys");
	if (len > TK_VERIFY_TOKEN_MAX)
		return reject(TK_VERIFY_TOO_LONG, err, errlen, "token longer than %d bytes",
		              TK_VERIFY_TOKEN_MAX);

	/* Exactly three segments. */
	dot1 = memchr(token, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
		return reject(TK_VERIFY_MALFORMED, err, errlen, "not three dot-separated segments");
	hl = (size_t)(dot1 - token);
	pl = (size_t)(dot2 - dot1 - 1);
	sl = len - (size_t)(dot2 + 1 - token);

	/* Canonical base64url, all three segments, before anything else. */
	hdr = buf;
	hn = tk_b64url_decode(token, hl, hdr);
	pay = hn >= 0 ? hdr + hn : NULL;
	pn = pay ? tk_b64url_decode(dot1 + 1, pl, pay) : -1;
	sig = pn >= 0 ? pay + pn : NULL;
	sn = sig ? tk_b64url_decode(dot2 + 1, sl, sig) : -1;
	if (hn < 0 || pn < 0 || sn < 0)
		return reject(TK_VERIFY_MALFORMED, err, errlen,
		              "%s segment is not canonical base64url",
		              hn < 0 ? "header" : pn < 0 ? "payload" : "signature");
	if (hn == 0 || pn == 0)
		return reject(TK_VERIFY_MALFORMED, err, errlen, "empty %s",
		              hn == 0 ? "header" : "payload");

	h = load_object((const char *)hdr, (size_t)hn);
	if (h == NULL)
		return reject(TK_VERIFY_MALFORMED, err, errlen,
		              "header is not a JSON object (invalid JSON, duplicate member, "
		              "or too deep)");
	rc = check_header(v, h, &key, err, errlen);
	if (rc != TK_VERIFY_OK)
		goto done;
	if (key == NULL) {
		rc = reject(TK_VERIFY_INTERNAL, err, errlen, "no key selected");
		goto done;
	}

	if ((size_t)sn != key->sig_len) {
		rc = reject(TK_VERIFY_SIGNATURE, err, errlen, "signature is %ld bytes, not %zu", sn,
		            key->sig_len);
		goto done;
	}
	switch (check_signature(v, key, token, hl + 1 + pl, sig, (size_t)sn)) {
	case 1:
		break;
	case 0:
		rc = reject(TK_VERIFY_SIGNATURE, err, errlen, "signature does not verify");
		goto done;
	default:
		rc = reject(TK_VERIFY_INTERNAL, err, errlen, "OpenSSL failed to verify");
		goto done;
	}

	p = load_object((const char *)pay, (size_t)pn);
	if (p == NULL) {
		rc = reject(TK_VERIFY_MALFORMED, err, errlen,
		            "payload is not a JSON object (invalid JSON, duplicate member, "
		            "or too deep)");
		goto done;
	}
	rc = check_claims(v, p, now, &c, err, errlen);
	if (rc != TK_VERIFY_OK)
		goto done;

	snprintf(c.kid, sizeof(c.kid), "%s", key->kid);
	snprintf(c.alg, sizeof(c.alg), "%s", ALG_NAME[key->alg]);
	if (out != NULL) {
		c.json = p;
		*out = c;
		p = NULL;
	}
done:
	json_decref(h);
	json_decref(p);
	return rc;
}

int tk_verify(const tk_verifier *v, const char *token, size_t len, tk_claims *out, char *err,
              size_t errlen)
{
	return tk_verify_at(v, token, len, (int64_t)time(NULL), out, err, errlen);
}
