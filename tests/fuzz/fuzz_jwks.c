/*
 * fuzz_jwks.c - tk_verifier_load_jwks on untrusted JWK Set text (SECURITY
 * C4, C6, G3; a resource server fetches it over the network).
 *
 * Each input is loaded into a verifier that already holds the test JWK Set:
 *   - refused: the previous keys must be unchanged (verify.h);
 *   - accepted: 1..TK_VERIFY_MAX_KEYS keys with sane kids and algs, and a
 *     token naming each key with an all-zero signature of the usual size
 *     (ES256 r = s = 0, the "psychic signature", CVE-2022-21449) and an
 *     all-ones one must be refused.
 */
#include "fuzz.h"
#include "testkeys.h"

#include <tokend/crypto.h>
#include <tokend/verify.h>

static char *base_jwks;
static size_t base_len, base_count;
static char base_kids[8][64];
/* One verifier for the whole run, holding the test keys between inputs:
 * loading them costs milliseconds (OpenSSL's RSA public key check), so they
 * are loaded again only after an input replaced them. */
static tk_verifier *v;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];
	(void)argc;
	(void)argv;
	json_object_seed(0x746f6b65);
	base_jwks = fuzz_test_jwks();
	base_len = strlen(base_jwks);
	v = tk_verifier_new();
	if (!v || tk_verifier_load_jwks(v, base_jwks, base_len, err, sizeof err) != 0 ||
	    tk_verifier_set_issuer(v, FUZZ_ISSUER, err, sizeof err) != 0)
		fuzz_die(err);
	base_count = tk_verifier_key_count(v);
	FUZZ_CHECK(base_count == 3);
	for (size_t i = 0; i < base_count; i++) {
		const char *kid = NULL;
		FUZZ_CHECK(tk_verifier_key_at(v, i, &kid, NULL) == 0);
		snprintf(base_kids[i], sizeof(base_kids[i]), "%s", kid);
	}
	return 0;
}

/* A token for `kid`/`alg` with a signature of `siglen` bytes of `fill`. */
static void try_forgery(const tk_verifier *ver, const char *kid, const char *alg, size_t siglen,
                        unsigned char fill)
{
	static const char payload[] =
		"{\"iss\":\"" FUZZ_ISSUER "\",\"sub\":\"s\",\"client_id\":\"c\",\"jti\":\"j\","
		"\"iat\":1767225000,\"exp\":1767229200}";
	json_t *h = json_pack("{s:s,s:s,s:s}", "alg", alg, "typ", "at+jwt", "kid", kid);
	char *hs = h ? json_dumps(h, JSON_COMPACT) : NULL;
	unsigned char sig[1024];
	char *tok;
	size_t n;
	if (!hs)
		abort();
	memset(sig, fill, siglen);
	tok = malloc(tk_b64url_encoded_len(strlen(hs)) + tk_b64url_encoded_len(sizeof(payload)) +
	             tk_b64url_encoded_len(siglen) + 3);
	if (!tok)
		abort();
	n = tk_b64url_encode(hs, strlen(hs), tok);
	tok[n++] = '.';
	n += tk_b64url_encode(payload, sizeof(payload) - 1, tok + n);
	tok[n++] = '.';
	n += tk_b64url_encode(sig, siglen, tok + n);
	int rc = tk_verify_at(ver, tok, n, FUZZ_NOW, NULL, NULL, 0);
	FUZZ_CHECK(rc != TK_VERIFY_OK && rc != TK_VERIFY_INTERNAL);
	free(tok);
	free(hs);
	json_decref(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	char *text = malloc(size ? size : 1);   /* exact size, for ASan */
	if (!text)
		abort();
	if (size)
		memcpy(text, data, size);

	memset(err, 'x', sizeof(err));
	int rc = tk_verifier_load_jwks(v, text, size, err, sizeof err);
	FUZZ_CHECK(rc == 0 || rc == -1);
	size_t count = tk_verifier_key_count(v);
	if (rc != 0) {
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
		FUZZ_CHECK(count == base_count);
		for (size_t i = 0; i < count; i++) {
			const char *kid = NULL;
			FUZZ_CHECK(tk_verifier_key_at(v, i, &kid, NULL) == 0 && strcmp(kid, base_kids[i]) == 0);
		}
	} else {
		FUZZ_CHECK(size <= TK_VERIFY_JWKS_MAX);
		FUZZ_CHECK(count >= 1 && count <= TK_VERIFY_MAX_KEYS);
		FUZZ_CHECK(tk_verifier_key_at(v, count, NULL, NULL) == -1);
		for (size_t i = 0; i < count; i++) {
			const char *kid = NULL, *alg = NULL;
			FUZZ_CHECK(tk_verifier_key_at(v, i, &kid, &alg) == 0);
			FUZZ_CHECK(kid && kid[0] && strlen(kid) <= TK_VERIFY_KID_MAX);
			FUZZ_CHECK(alg && (strcmp(alg, "ES256") == 0 || strcmp(alg, "EdDSA") == 0 ||
			                   strcmp(alg, "RS256") == 0));
			for (size_t j = 0; j < i; j++) {
				const char *other = NULL;
				tk_verifier_key_at(v, j, &other, NULL);
				FUZZ_CHECK(strcmp(kid, other) != 0);
			}
			if (i < 4) {
				size_t sl = strcmp(alg, "RS256") == 0 ? 256 : 64;
				try_forgery(v, kid, alg, sl, 0x00);
				try_forgery(v, kid, alg, sl, 0xff);
			}
		}
		if (tk_verifier_load_jwks(v, base_jwks, base_len, err, sizeof err) != 0)
			fuzz_die(err);
	}
	free(text);
	return 0;
}
