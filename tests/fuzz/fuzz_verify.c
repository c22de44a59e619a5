/*
 * fuzz_verify.c - tk_verify_at, the resource-server token verifier
 * (SECURITY C1-C7, F7), against the fixed test JWK Set of testkeys.h.
 *
 * Two kinds of input:
 *   - anything not starting with '{' is a token, verified as it is. No such
 *     input can carry a valid signature (the seeds have garbage ones), so a
 *     success is a forgery and aborts: this is the oracle for alg confusion,
 *     "none", r = s = 0 and similar (C1, C2, C5).
 *   - "{...header JSON...}\0{...payload JSON...}": the harness encodes both
 *     and signs them with the Ed25519 test key, so that the checks after the
 *     signature (claims, types, times, audience, scope: C7) get fuzzed; the
 *     header still chooses alg, typ and kid.
 * Each token goes to two verifiers: issuer only (defaults), and strict
 * (audience, required scope, leeway 0, ES256/EdDSA only); the clock is fixed.
 */
#include "fuzz.h"
#include "testkeys.h"

#include <tokend/crypto.h>
#include <tokend/verify.h>

static tk_verifier *loose, *strict;
static EVP_PKEY *edkey;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];
	(void)argc;
	(void)argv;
	json_object_seed(0x746f6b65);   /* fixed: runs are reproducible */
	char *jwks = fuzz_test_jwks();
	edkey = fuzz_eddsa_key();
	loose = tk_verifier_new();
	strict = tk_verifier_new();
	if (!loose || !strict ||
	    tk_verifier_load_jwks(loose, jwks, strlen(jwks), err, sizeof err) != 0 ||
	    tk_verifier_set_issuer(loose, FUZZ_ISSUER, err, sizeof err) != 0 ||
	    tk_verifier_load_jwks(strict, jwks, strlen(jwks), err, sizeof err) != 0 ||
	    tk_verifier_set_issuer(strict, FUZZ_ISSUER, err, sizeof err) != 0 ||
	    tk_verifier_set_audience(strict, FUZZ_AUDIENCE, err, sizeof err) != 0 ||
	    tk_verifier_set_scopes(strict, FUZZ_SCOPE, err, sizeof err) != 0 ||
	    tk_verifier_set_leeway(strict, 0, err, sizeof err) != 0 ||
	    tk_verifier_set_algorithms(strict, "ES256 EdDSA", err, sizeof err) != 0)
		fuzz_die(err);
	FUZZ_CHECK(tk_verifier_key_count(loose) == 3);
	free(jwks);
	return 0;
}

/* "a.b" + "." + base64url(Ed25519 signature of "a.b"), malloc'd. */
static char *sign_token(const uint8_t *data, size_t size, size_t *tlen)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t hl = nul ? (size_t)(nul - data) : size;
	size_t pl = nul ? size - hl - 1 : 0;
	size_t cap = tk_b64url_encoded_len(hl) + tk_b64url_encoded_len(pl) +
	             tk_b64url_encoded_len(64) + 3;
	char *t = malloc(cap);
	unsigned char sig[64];
	size_t sl = sizeof(sig), n;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!t || !ctx)
		abort();
	n = tk_b64url_encode(data, hl, t);
	t[n++] = '.';
	n += tk_b64url_encode(nul ? nul + 1 : data + size, pl, t + n);
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, edkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &sl, (const unsigned char *)t, n) != 1 || sl != 64)
		fuzz_die("Ed25519 signing");
	EVP_MD_CTX_free(ctx);
	t[n++] = '.';
	n += tk_b64url_encode(sig, sl, t + n);
	*tlen = n;
	return t;
}

static void check(const tk_verifier *v, int is_strict, const char *tok, size_t len, int forged)
{
	tk_claims c;
	char err[256];
	memset(&c, 0xa5, sizeof(c));
	memset(err, 'x', sizeof(err));
	int rc = tk_verify_at(v, tok, len, FUZZ_NOW, &c, err, sizeof err);

	FUZZ_CHECK(rc >= TK_VERIFY_OK && rc <= TK_VERIFY_INTERNAL);
	FUZZ_CHECK(tk_verify_strerror(rc) != NULL);
	/* A configured verifier never says EINVAL, and OpenSSL never fails. */
	FUZZ_CHECK(rc != TK_VERIFY_EINVAL && rc != TK_VERIFY_INTERNAL);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	/* Reasons are printable ASCII (no token bytes pasted in raw). */
	for (const char *p = err; *p; p++)
		FUZZ_CHECK(*p >= 0x20 && *p <= 0x7e);
	if (rc != TK_VERIFY_OK) {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(c.json == NULL && c.iss == NULL && c.sub == NULL && c.kid[0] == '\0');
		if (len > TK_VERIFY_TOKEN_MAX)
			FUZZ_CHECK(rc == TK_VERIFY_TOO_LONG);
		return;
	}
	/* Accepted: nothing but a token the harness signed. */
	FUZZ_CHECK(!forged);
	FUZZ_CHECK(len <= TK_VERIFY_TOKEN_MAX);
	FUZZ_CHECK(json_is_object(c.json));
	FUZZ_CHECK(c.iss && strcmp(c.iss, FUZZ_ISSUER) == 0);
	FUZZ_CHECK(c.sub && c.sub[0] && c.client_id && c.client_id[0] && c.jti && c.jti[0]);
	FUZZ_CHECK(strcmp(c.kid, FUZZ_KID_EDDSA) == 0 && strcmp(c.alg, "EdDSA") == 0);
	long leeway = is_strict ? 0 : TK_VERIFY_LEEWAY_DEFAULT;
	/* Written so that no claim value can overflow the harness's sums. */
	FUZZ_CHECK(FUZZ_NOW - leeway < c.exp);
	FUZZ_CHECK(c.iat <= FUZZ_NOW + leeway && c.nbf <= FUZZ_NOW + leeway);
	FUZZ_CHECK(json_is_integer(json_object_get(c.json, "exp")));
	if (is_strict) {
		json_t *aud = json_object_get(c.json, "aud"), *e;
		size_t i;
		int found = json_is_string(aud) && strcmp(json_string_value(aud), FUZZ_AUDIENCE) == 0;
		json_array_foreach(aud, i, e)
			found |= json_is_string(e) && strcmp(json_string_value(e), FUZZ_AUDIENCE) == 0;
		FUZZ_CHECK(found);
		FUZZ_CHECK(c.scope != NULL && strstr(c.scope, FUZZ_SCOPE) != NULL);
	}
	tk_claims_release(&c);
	FUZZ_CHECK(c.json == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *tok;
	size_t len;
	int forged = !(size > 0 && data[0] == '{');

	if (forged) {
		tok = malloc(size ? size : 1);   /* exact size, for ASan */
		if (!tok)
			abort();
		if (size)
			memcpy(tok, data, size);
		len = size;
	} else {
		tok = sign_token(data, size, &len);
	}
	check(loose, 0, tok, len, forged);
	check(strict, 1, tok, len, forged);
	free(tok);
	return 0;
}
