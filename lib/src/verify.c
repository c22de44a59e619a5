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
#include "internal.h"
#include "jwk.h"
#include "verify_int.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#define P256_LEN        TK_JWK_P256_LEN
#define ES256_SIG_LEN   64
#define EDDSA_SIG_LEN   64
#define RSA_MIN_BITS    TK_JWK_RSA_MIN_BITS
#define SHA256_LEN      32

enum valg { ALG_ES256 = 0, ALG_EDDSA, ALG_RS256, ALG_COUNT };

static const char *const ALG_NAME[ALG_COUNT] = { "ES256", "EdDSA", "RS256" };
/* The header "typ" of each kind of document, short and as a media type. */
static const char *const TYP_NAME[] = { "at+jwt", "statuslist+jwt" };
static const char *const TYP_MEDIA[] = { "application/at+jwt", "application/statuslist+jwt" };
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

/* Like tk_seterr, and return `code` (for the verify path). */
__attribute__((format(printf, 4, 5)))
static int reject(int code, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tk_vseterr(err, errlen, fmt, ap);
	va_end(ap);
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
		tk_seterr(why, wl, "not a JSON object");
		return ENTRY_FAIL;
	}
	kty = json_string_value(json_object_get(o, "kty"));
	if (kty == NULL) {
		tk_seterr(why, wl, "no string \"kty\"");
		return ENTRY_FAIL;
	}
	for (size_t i = 0; i < sizeof(PRIVATE_MEMBERS) / sizeof(PRIVATE_MEMBERS[0]); i++) {
		if (json_object_get(o, PRIVATE_MEMBERS[i]) != NULL) {
			tk_seterr(why, wl, "holds private or symmetric key material (\"%s\"); "
			       "a JWKS must publish public keys only", PRIVATE_MEMBERS[i]);
			return ENTRY_FAIL;
		}
	}
	if (strcmp(kty, "oct") == 0) {
		tk_seterr(why, wl, "symmetric key (kty \"oct\") in a JWKS");
		return ENTRY_FAIL;
	}

	/* Keys meant for something else are legitimate neighbours: skip them. */
	v = json_object_get(o, "use");
	if (v != NULL) {
		use = json_string_value(v);
		if (use == NULL) {
			tk_seterr(why, wl, "\"use\" is not a string");
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
			tk_seterr(why, wl, "\"key_ops\" is not an array");
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
			tk_seterr(why, wl, "\"alg\" is not a string");
			return ENTRY_FAIL;
		}
		if (alg_from_name(alg_s, &named) != 0)
			return ENTRY_SKIP;          /* another algorithm: not for us */
		if (!have_implied || implied != named) {
			tk_seterr(why, wl, "\"alg\" %s does not fit this key (kty \"%.8s\"%s%.16s%s)",
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
		tk_seterr(why, wl, "no string \"kid\"");
		return ENTRY_FAIL;
	}
	if (json_string_length(v) == 0 || json_string_length(v) > TK_VERIFY_KID_MAX ||
	    strlen(kid) != json_string_length(v)) {
		tk_seterr(why, wl, "\"kid\" must be 1..%d bytes", TK_VERIFY_KID_MAX);
		return ENTRY_FAIL;
	}

	k->alg = implied;
	switch (implied) {
	case ALG_ES256:
		k->pk = tk_jwk_ec(o, TK_JWK_PUBLIC, why, wl);
		k->sig_len = ES256_SIG_LEN;
		break;
	case ALG_EDDSA:
		k->pk = tk_jwk_okp(o, TK_JWK_PUBLIC, why, wl);
		k->sig_len = EDDSA_SIG_LEN;
		break;
	case ALG_RS256:
		k->pk = tk_jwk_rsa(o, TK_JWK_PUBLIC, why, wl);
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
			tk_seterr(why, wl, "OpenSSL cannot set up verification with this key");
			key_release(k);
			return ENTRY_FAIL;
		}
	} else {
		k->tmpl = make_template(k->pk, implied, md);
		if (k->tmpl == NULL) {
			tk_seterr(why, wl, "OpenSSL cannot set up verification with this key");
			key_release(k);
			return ENTRY_FAIL;
		}
	}
	k->kid = dupstr(kid);
	if (k->kid == NULL) {
		tk_seterr(why, wl, "out of memory");
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
		tk_seterr(err, errlen, "no JWKS given");
		return -1;
	}
	if (len > TK_VERIFY_JWKS_MAX) {
		tk_seterr(err, errlen, "JWKS is larger than %d bytes", TK_VERIFY_JWKS_MAX);
		return -1;
	}
	root = load_object(json, len);
	if (root == NULL) {
		tk_seterr(err, errlen, "JWKS is not a JSON object (invalid JSON, duplicate member, "
		       "or nested deeper than %d)", TK_VERIFY_JSON_DEPTH);
		return -1;
	}
	arr = json_object_get(root, "keys");
	if (!json_is_array(arr)) {
		tk_seterr(err, errlen, "JWKS has no \"keys\" array");
		goto done;
	}
	count = json_array_size(arr);
	if (count > TK_VERIFY_MAX_KEYS) {
		tk_seterr(err, errlen, "JWKS has %zu keys (at most %d)", count, TK_VERIFY_MAX_KEYS);
		goto done;
	}
	keys = calloc(count ? count : 1, sizeof(*keys));
	if (keys == NULL) {
		tk_seterr(err, errlen, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < count; i++) {
		why[0] = '\0';
		switch (parse_entry(json_array_get(arr, i), v->sha256, &keys[n], why, sizeof(why))) {
		case ENTRY_FAIL:
			tk_seterr(err, errlen, "JWKS key %zu: %s", i, why);
			goto done;
		case ENTRY_SKIP:
			break;
		case ENTRY_USE:
			for (size_t j = 0; j < n; j++) {
				if (strcmp(keys[j].kid, keys[n].kid) == 0) {
					tk_seterr(err, errlen, "JWKS key %zu: duplicate kid", i);
					n++;
					goto done;
				}
			}
			n++;
			break;
		}
	}
	if (n == 0) {
		tk_seterr(err, errlen, "JWKS has no usable signing key (ES256 P-256, EdDSA Ed25519 "
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
		tk_seterr(err, errlen, "%s must be 1..%d bytes", what, TK_VERIFY_URI_MAX);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f) {
			tk_seterr(err, errlen, "%s contains a control character", what);
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
			tk_seterr(err, errlen, "%s is required", what);
			return -1;
		}
	} else {
		if (!uri_ok(s, what, err, errlen))
			return -1;
		copy = dupstr(s);
		if (copy == NULL) {
			tk_seterr(err, errlen, "out of memory");
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
		tk_seterr(err, errlen, "no verifier");
		return -1;
	}
	return set_string(&v->issuer, issuer, "issuer", false, err, errlen);
}

int tk_verifier_set_audience(tk_verifier *v, const char *audience, char *err, size_t errlen)
{
	if (v == NULL) {
		tk_seterr(err, errlen, "no verifier");
		return -1;
	}
	return set_string(&v->audience, audience, "audience", true, err, errlen);
}

int tk_verifier_set_scopes(tk_verifier *v, const char *scopes, char *err, size_t errlen)
{
	tk_scopes parsed = { 0 };
	const char *why = NULL;

	if (v == NULL) {
		tk_seterr(err, errlen, "no verifier");
		return -1;
	}
	if (scopes != NULL && *scopes != '\0' &&
	    tk_scopes_parse(scopes, strlen(scopes), &parsed, &why) != 0) {
		tk_seterr(err, errlen, "required scopes: %s", why ? why : "invalid");
		return -1;
	}
	tk_scopes_free(&v->scopes);
	v->scopes = parsed;
	return 0;
}

int tk_verifier_set_leeway(tk_verifier *v, long seconds, char *err, size_t errlen)
{
	if (v == NULL) {
		tk_seterr(err, errlen, "no verifier");
		return -1;
	}
	if (seconds < 0 || seconds > TK_VERIFY_LEEWAY_MAX) {
		tk_seterr(err, errlen, "leeway must be 0..%d seconds", TK_VERIFY_LEEWAY_MAX);
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
		tk_seterr(err, errlen, "no algorithms given");
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
			tk_seterr(err, errlen, "unsupported algorithm (accepted: ES256 EdDSA RS256)");
			return -1;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		if (alg_from_name(name, &a) != 0) {
			tk_seterr(err, errlen, "unsupported algorithm \"%s\" (accepted: ES256 EdDSA RS256)",
			       name);
			return -1;
		}
		mask |= 1u << a;
		p += n;
	}
	if (mask == 0) {
		tk_seterr(err, errlen, "no algorithms given");
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
	case TK_VERIFY_STATUS:         return "key listed as invalid in the status list";
	case TK_VERIFY_STATUS_UNKNOWN: return "token status unknown";
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
static int check_header(const tk_verifier *v, json_t *h, enum tk_jws_typ want,
                        const struct vkey **key, char *err, size_t errlen)
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
		return reject(TK_VERIFY_TYP, err, errlen, "header has no \"typ\" (want %s)",
		              TYP_NAME[want]);
	typ = json_string_value(typ_j);
	if (typ == NULL || strlen(typ) != json_string_length(typ_j) ||
	    !(ascii_ieq(typ, TYP_NAME[want]) || ascii_ieq(typ, TYP_MEDIA[want])))
		return reject(TK_VERIFY_TYP, err, errlen, "header \"typ\" is not %s", TYP_NAME[want]);

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

/*
 * Everything of a verification but the claims: length, segments, canonical
 * base64url, header, signature, payload a JSON object. On TK_VERIFY_OK
 * *payload is the payload (the caller's) and *key the kid's key.
 */
int tk_verify_jws(const tk_verifier *v, const char *token, size_t len, size_t max_len,
                  enum tk_jws_typ want, const struct vkey **key_out, json_t **payload, char *err,
                  size_t errlen)
{
	/* Decoded header, payload and signature share one buffer: together they
	 * are at most 3/4 of the (capped) token plus a little. An access token
	 * fits the stack; a longer document (a status list) gets the heap. */
	unsigned char stackbuf[TK_VERIFY_TOKEN_MAX];
	unsigned char *buf = stackbuf;
	const char *dot1, *dot2;
	size_t hl, pl, sl;
	long hn, pn, sn;
	unsigned char *hdr, *pay, *sig;
	const struct vkey *key = NULL;
	json_t *h = NULL, *p = NULL;
	int rc;

	*payload = NULL;
	*key_out = NULL;
	if (len > max_len)
		return reject(TK_VERIFY_TOO_LONG, err, errlen, "token longer than %zu bytes", max_len);
	if (len > sizeof(stackbuf) && (buf = malloc(len)) == NULL)
		return reject(TK_VERIFY_NOMEM, err, errlen, "out of memory");

	/* Exactly three segments. */
	dot1 = memchr(token, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
		rc = reject(TK_VERIFY_MALFORMED, err, errlen, "not three dot-separated segments");
		goto done;
	}
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
	if (hn < 0 || pn < 0 || sn < 0) {
		rc = reject(TK_VERIFY_MALFORMED, err, errlen,
		            "%s segment is not canonical base64url",
		            hn < 0 ? "header" : pn < 0 ? "payload" : "signature");
		goto done;
	}
	if (hn == 0 || pn == 0) {
		rc = reject(TK_VERIFY_MALFORMED, err, errlen, "empty %s",
		            hn == 0 ? "header" : "payload");
		goto done;
	}

	h = load_object((const char *)hdr, (size_t)hn);
	if (h == NULL) {
		rc = reject(TK_VERIFY_MALFORMED, err, errlen,
		            "header is not a JSON object (invalid JSON, duplicate member, "
		            "or too deep)");
		goto done;
	}
	rc = check_header(v, h, want, &key, err, errlen);
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
	*payload = p;
	*key_out = key;
	rc = TK_VERIFY_OK;
done:
	json_decref(h);
	if (buf != stackbuf)
		free(buf);
	return rc;
}

int tk_verify_at(const tk_verifier *v, const char *token, size_t len, int64_t now,
                 tk_claims *out, char *err, size_t errlen)
{
	const struct vkey *key = NULL;
	json_t *p = NULL;
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
	rc = tk_verify_jws(v, token, len, TK_VERIFY_TOKEN_MAX, TK_JWS_AT, &key, &p, err, errlen);
	if (rc != TK_VERIFY_OK)
		return rc;
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
	json_decref(p);
	return rc;
}

long tk_verifier_leeway(const tk_verifier *v)
{
	return v->leeway;
}

const char *tk_verifier_issuer(const tk_verifier *v)
{
	return v->issuer;
}

int tk_verify(const tk_verifier *v, const char *token, size_t len, tk_claims *out, char *err,
              size_t errlen)
{
	return tk_verify_at(v, token, len, (int64_t)time(NULL), out, err, errlen);
}
