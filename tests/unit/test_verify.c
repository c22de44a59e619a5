/*
 * test_verify.c - the token verification API (verify.h): one named test per
 * attack, real tokens minted with tk_minter, hostile tokens crafted here.
 *
 * Keys are generated at run time with `openssl genpkey` into a private
 * mkdtemp directory (files chmod 600) and removed at the end; nothing is
 * committed. Also prints (never asserts) ES256 verifications per second.
 */
#include "unit.h"

#include "tokend/crypto.h"
#include "tokend/signer.h"
#include "tokend/verify.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#define ISS  "https://issuer.test"
#define AUD  "https://api.test"

enum { K_ES_A, K_ES_B, K_ED, K_RSA, K_COUNT };
enum sigkind { SIG_NONE, SIG_ES256, SIG_EDDSA, SIG_RS256 };

struct tkey {
	const char *file;
	const char *genargs;
	enum sigkind kind;
	char path[128];
	EVP_PKEY *pk;
	const char *kid;           /* owned by the signer */
};

static struct tkey keys[K_COUNT] = {
	{ "es_a.pem", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256", SIG_ES256, "", NULL, NULL },
	{ "es_b.pem", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256", SIG_ES256, "", NULL, NULL },
	{ "ed.pem", "-algorithm ED25519", SIG_EDDSA, "", NULL, NULL },
	{ "rsa.pem", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048", SIG_RS256, "", NULL, NULL },
};

static char dir[64];
static char extra_paths[8][128];
static int nextra;
static tk_signer *signer;
static tk_minter *minter;
static char *jwks;               /* the signer's public JWKS */
static tk_verifier *ver;         /* issuer ISS, all keys, default settings */
static int64_t NOW;
static char errbuf[512];

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static int gen_key(const char *path, const char *args)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "openssl genpkey %s -out '%s' 2>/dev/null", args, path);
	if (system(cmd) != 0)
		return -1;
	return chmod(path, 0600);
}

static EVP_PKEY *read_pem(const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	return pk;
}

static char *b64(const void *p, size_t n)
{
	char *s = malloc(tk_b64url_encoded_len(n) + 1);
	tk_b64url_encode(p, n, s);
	return s;
}

/* Sign `in` the JWS way: raw R||S for ES256. Returns the length written to
 * out (room for 512 bytes), 0 for SIG_NONE. */
static size_t sign_raw(EVP_PKEY *pk, enum sigkind kind, const char *in, size_t n,
                       unsigned char *out)
{
	EVP_MD_CTX *c;
	unsigned char der[128];
	size_t len = 512, dl = sizeof(der);

	if (kind == SIG_NONE)
		return 0;
	c = EVP_MD_CTX_new();
	if (kind == SIG_EDDSA) {
		TEST_ASSERT(EVP_DigestSignInit_ex(c, NULL, NULL, NULL, NULL, pk, NULL) == 1);
		TEST_ASSERT(EVP_DigestSign(c, out, &len, (const unsigned char *)in, n) == 1);
	} else if (kind == SIG_RS256) {
		TEST_ASSERT(EVP_DigestSignInit_ex(c, NULL, "SHA256", NULL, NULL, pk, NULL) == 1);
		TEST_ASSERT(EVP_DigestSign(c, out, &len, (const unsigned char *)in, n) == 1);
	} else {
		const unsigned char *dp = der;
		ECDSA_SIG *s;
		TEST_ASSERT(EVP_DigestSignInit_ex(c, NULL, "SHA256", NULL, NULL, pk, NULL) == 1);
		TEST_ASSERT(EVP_DigestSign(c, der, &dl, (const unsigned char *)in, n) == 1);
		s = d2i_ECDSA_SIG(NULL, &dp, (long)dl);
		TEST_ASSERT(s != NULL);
		TEST_ASSERT(BN_bn2binpad(ECDSA_SIG_get0_r(s), out, 32) == 32);
		TEST_ASSERT(BN_bn2binpad(ECDSA_SIG_get0_s(s), out + 32, 32) == 32);
		ECDSA_SIG_free(s);
		len = 64;
	}
	EVP_MD_CTX_free(c);
	return len;
}

/* "b64(hdr).b64(pay)" as a malloc'd string. */
static char *signing_input(const char *hdr, size_t hl, const char *pay, size_t pl)
{
	char *h = b64(hdr, hl), *p = b64(pay, pl);
	size_t n = strlen(h) + strlen(p) + 2;
	char *s = malloc(n);
	snprintf(s, n, "%s.%s", h, p);
	free(h);
	free(p);
	return s;
}

/* input "." b64(sig) */
static char *with_sig(const char *input, const unsigned char *sig, size_t sl)
{
	char *sb = b64(sig, sl);
	size_t n = strlen(input) + strlen(sb) + 2;
	char *t = malloc(n);
	snprintf(t, n, "%s.%s", input, sb);
	free(sb);
	return t;
}

/* A token of raw JSON texts signed with key `k` (or unsigned, k < 0). */
static char *forge_raw(const char *hdr, const char *pay, int k)
{
	unsigned char sig[512];
	char *in = signing_input(hdr, strlen(hdr), pay, strlen(pay));
	size_t sl = k < 0 ? 0 : sign_raw(keys[k].pk, keys[k].kind, in, strlen(in), sig);
	char *t = with_sig(in, sig, sl);
	free(in);
	return t;
}

/* A token of JSON values (references are stolen) signed with key `k`. */
static char *forge(json_t *hdr, json_t *pay, int k)
{
	char *h = json_dumps(hdr, JSON_COMPACT), *p = json_dumps(pay, JSON_COMPACT);
	char *t = forge_raw(h, p, k);
	free(h);
	free(p);
	json_decref(hdr);
	json_decref(pay);
	return t;
}

static const char *alg_of(int k)
{
	return keys[k].kind == SIG_ES256 ? "ES256" : keys[k].kind == SIG_EDDSA ? "EdDSA" : "RS256";
}

/* The header tokend mints for key k. */
static json_t *std_header(int k)
{
	return json_pack("{s:s, s:s, s:s}", "alg", alg_of(k), "kid", keys[k].kid, "typ", "at+jwt");
}

/* The claims tokend mints, valid at NOW. */
static json_t *std_claims(void)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s}",
	                 "iss", ISS, "sub", "svc-billing", "aud", AUD, "client_id", "tk_client",
	                 "scope", "read write", "acct", "acme", "iat", (json_int_t)(NOW - 10),
	                 "nbf", (json_int_t)(NOW - 10), "exp", (json_int_t)(NOW + 600), "jti",
	                 "AAAAAAAAAAAAAAAAAAAAAA");
}

/* std_header(k) as compact JSON text (malloc'd). */
static char *header_text(int k)
{
	json_t *h = std_header(k);
	char *t = json_dumps(h, JSON_COMPACT);
	json_decref(h);
	return t;
}

/* std_claims() as compact JSON text (malloc'd). */
static char *claims_text(void)
{
	json_t *c = std_claims();
	char *t = json_dumps(c, JSON_COMPACT);
	json_decref(c);
	return t;
}

/* Mint a real token with tk_minter, signed with key k. */
static char *mint(int k, const char *iss, const char *const *aud, size_t naud, const char *scope,
                  int64_t iat, int64_t exp)
{
	tk_token_claims c = {
		.iss = iss, .sub = "svc-billing", .aud = aud, .aud_count = naud,
		.client_id = "tk_client", .scope = scope, .acct = "acme", .iat = iat, .exp = exp,
	};
	char *t;
	TEST_ASSERT(tk_signer_set_active(signer, keys[k].kid, errbuf, sizeof(errbuf)) == 0);
	t = tk_minter_mint(minter, &c, NULL, errbuf, sizeof(errbuf));
	TEST_ASSERT(t != NULL);
	return t;
}

static char *mint_std(int k)
{
	static const char *const aud[] = { AUD };
	return mint(k, ISS, aud, 1, "read write", NOW, NOW + 600);
}

/* Verify `tok` with `v` at NOW; expect `want`. Also checks that a rejection
 * reason never repeats the token's segments. Frees tok. */
static void expect_v(const tk_verifier *v, char *tok, int want, int line)
{
	tk_claims c;
	int rc;

	errbuf[0] = '\0';
	rc = tk_verify_at(v, tok, strlen(tok), NOW, &c, errbuf, sizeof(errbuf));
	if (rc != want) {
		fprintf(stderr, "  line %d: got %d (%s: %s), want %d (%s)\n", line, rc,
		        tk_verify_strerror(rc), errbuf, want, tk_verify_strerror(want));
	}
	unit_checks++;
	if (rc != want)
		unit_failures++;
	if (rc == TK_VERIFY_OK) {
		TEST_ASSERT(c.json != NULL);
	} else {
		TEST_ASSERT(c.json == NULL);
		TEST_ASSERT(errbuf[0] != '\0');
		/* The reason never echoes token material. */
		const char *dot = strchr(tok, '.');
		if (dot != NULL && dot - tok > 8) {
			char head[9];
			memcpy(head, tok, 8);
			head[8] = '\0';
			TEST_ASSERT(strstr(errbuf, head) == NULL);
		}
	}
	tk_claims_release(&c);
	free(tok);
}
#define EXPECT(tok, want) expect_v(ver, (tok), (want), __LINE__)
#define EXPECT_V(v, tok, want) expect_v((v), (tok), (want), __LINE__)

/* A verifier on the signer's JWKS with issuer ISS, plus tweaks. */
static tk_verifier *new_verifier(void)
{
	tk_verifier *v = tk_verifier_new();
	TEST_ASSERT(v != NULL);
	TEST_ASSERT(tk_verifier_load_jwks(v, jwks, strlen(jwks), errbuf, sizeof(errbuf)) == 0);
	TEST_ASSERT(tk_verifier_set_issuer(v, ISS, errbuf, sizeof(errbuf)) == 0);
	return v;
}

/* ------------------------------------------------------------------------ */
/* Tokens that must verify                                                  */

static void test_valid_es256(void)
{
	static const char *const aud[] = { AUD };
	char *t = mint(K_ES_A, ISS, aud, 1, "read write", NOW, NOW + 600);
	tk_claims c;

	TEST_ASSERT(tk_verify_at(ver, t, strlen(t), NOW, &c, errbuf, sizeof(errbuf)) == TK_VERIFY_OK);
	TEST_ASSERT_STR(c.iss, ISS);
	TEST_ASSERT_STR(c.sub, "svc-billing");
	TEST_ASSERT_STR(c.client_id, "tk_client");
	TEST_ASSERT_STR(c.scope, "read write");
	TEST_ASSERT_STR(c.acct, "acme");
	TEST_ASSERT(c.jti != NULL && strlen(c.jti) == TK_JTI_LEN);
	TEST_ASSERT(c.iat == NOW && c.nbf == NOW && c.exp == NOW + 600);
	TEST_ASSERT_STR(c.kid, keys[K_ES_A].kid);
	TEST_ASSERT_STR(c.alg, "ES256");
	TEST_ASSERT(json_is_object(c.json));
	TEST_ASSERT_STR(json_string_value(json_object_get(c.json, "aud")), AUD);
	tk_claims_release(&c);
	TEST_ASSERT(c.json == NULL);
	/* out may be NULL: just the verdict. */
	TEST_ASSERT(tk_verify_at(ver, t, strlen(t), NOW, NULL, NULL, 0) == TK_VERIFY_OK);
	/* tk_verify uses the real clock: a fresh token is valid now. */
	TEST_ASSERT(tk_verify(ver, t, strlen(t), NULL, errbuf, sizeof(errbuf)) == TK_VERIFY_OK);
	/* The length is honoured: no NUL needed, trailing bytes ignored. */
	{
		size_t n = strlen(t);
		char *copy = malloc(n + 5);
		memcpy(copy, t, n);
		memcpy(copy + n, "junk", 5);
		TEST_ASSERT(tk_verify_at(ver, copy, n, NOW, NULL, NULL, 0) == TK_VERIFY_OK);
		TEST_ASSERT(tk_verify_at(ver, copy, n + 4, NOW, NULL, NULL, 0) != TK_VERIFY_OK);
		free(copy);
	}
	free(t);
}

static void test_valid_eddsa(void)
{
	tk_claims c;
	char *t = mint_std(K_ED);
	TEST_ASSERT(tk_verify_at(ver, t, strlen(t), NOW, &c, errbuf, sizeof(errbuf)) == TK_VERIFY_OK);
	TEST_ASSERT_STR(c.alg, "EdDSA");
	tk_claims_release(&c);
	free(t);
	EXPECT(forge(std_header(K_ED), std_claims(), K_ED), TK_VERIFY_OK);
}

static void test_valid_rs256(void)
{
	tk_claims c;
	char *t = mint_std(K_RSA);
	TEST_ASSERT(tk_verify_at(ver, t, strlen(t), NOW, &c, errbuf, sizeof(errbuf)) == TK_VERIFY_OK);
	TEST_ASSERT_STR(c.alg, "RS256");
	tk_claims_release(&c);
	free(t);
	EXPECT(forge(std_header(K_RSA), std_claims(), K_RSA), TK_VERIFY_OK);
}

static void test_valid_second_es256_key(void)
{
	EXPECT(mint_std(K_ES_B), TK_VERIFY_OK);
	EXPECT(forge(std_header(K_ES_A), std_claims(), K_ES_A), TK_VERIFY_OK);
}

static void test_aud_array_and_no_scope(void)
{
	static const char *const aud2[] = { "https://other.test", AUD };
	tk_verifier *v = new_verifier();
	TEST_ASSERT(tk_verifier_set_audience(v, AUD, errbuf, sizeof(errbuf)) == 0);
	EXPECT_V(v, mint(K_ES_A, ISS, aud2, 2, NULL, NOW, NOW + 60), TK_VERIFY_OK);
	tk_verifier_free(v);
}

/* ------------------------------------------------------------------------ */
/* C1: alg none                                                             */

static void test_alg_none(void)
{
	const char *names[] = { "none", "NONE", "None", "nOnE" };
	for (size_t i = 0; i < 4; i++) {
		json_t *h = json_pack("{s:s, s:s, s:s}", "alg", names[i], "kid", keys[K_ES_A].kid,
		                      "typ", "at+jwt");
		EXPECT(forge(h, std_claims(), -1), TK_VERIFY_ALG);
		/* With a real ES256 signature attached, still refused on alg. */
		h = json_pack("{s:s, s:s, s:s}", "alg", names[i], "kid", keys[K_ES_A].kid, "typ",
		              "at+jwt");
		EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_ALG);
	}
}

static void test_alg_missing_or_odd(void)
{
	json_t *h = json_pack("{s:s, s:s}", "kid", keys[K_ES_A].kid, "typ", "at+jwt");
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_ALG);
	h = json_pack("{s:n, s:s, s:s}", "alg", "kid", keys[K_ES_A].kid, "typ", "at+jwt");
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_ALG);
	h = json_pack("{s:i, s:s, s:s}", "alg", 1, "kid", keys[K_ES_A].kid, "typ", "at+jwt");
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_ALG);
	h = json_pack("{s:s, s:s, s:s}", "alg", "es256", "kid", keys[K_ES_A].kid, "typ", "at+jwt");
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_ALG);
	h = json_pack("{s:s, s:s, s:s}", "alg", "ES384", "kid", keys[K_ES_A].kid, "typ", "at+jwt");
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_ALG);
	h = json_pack("{s:s, s:s, s:s}", "alg", "PS256", "kid", keys[K_RSA].kid, "typ", "at+jwt");
	EXPECT(forge(h, std_claims(), K_RSA), TK_VERIFY_ALG);
	h = json_pack("{s:[s], s:s, s:s}", "alg", "ES256", "kid", keys[K_ES_A].kid, "typ", "at+jwt");
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_ALG);
}

/* The alg in the header must be the kid's key's alg (no cross-key confusion). */
static void test_alg_not_kids_alg(void)
{
	/* EdDSA signature, kid of an ES256 key. */
	json_t *h = json_pack("{s:s, s:s, s:s}", "alg", "EdDSA", "kid", keys[K_ES_A].kid, "typ",
	                      "at+jwt");
	EXPECT(forge(h, std_claims(), K_ED), TK_VERIFY_ALG);
	/* RS256 header on the EdDSA key's kid. */
	h = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "kid", keys[K_ED].kid, "typ", "at+jwt");
	EXPECT(forge(h, std_claims(), K_RSA), TK_VERIFY_ALG);
}

/* ------------------------------------------------------------------------ */
/* C2: HMAC keyed with published public key bytes                           */

static char *hs256_token(const char *kid, const unsigned char *key, size_t keylen)
{
	json_t *h = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "kid", kid, "typ", "at+jwt");
	json_t *p = std_claims();
	char *hs = json_dumps(h, JSON_COMPACT), *ps = json_dumps(p, JSON_COMPACT);
	char *in = signing_input(hs, strlen(hs), ps, strlen(ps));
	unsigned char mac[32];
	unsigned int ml = 0;
	char *t;

	TEST_ASSERT(HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)in, strlen(in), mac,
	                 &ml) != NULL);
	t = with_sig(in, mac, ml);
	free(in);
	free(hs);
	free(ps);
	json_decref(h);
	json_decref(p);
	return t;
}

static void test_hs256_with_public_key_pem(void)
{
	for (int k = 0; k < K_COUNT; k++) {
		BIO *b = BIO_new(BIO_s_mem());
		char *pem = NULL;
		long len;
		TEST_ASSERT(PEM_write_bio_PUBKEY(b, keys[k].pk) == 1);
		len = BIO_get_mem_data(b, &pem);
		EXPECT(hs256_token(keys[k].kid, (unsigned char *)pem, (size_t)len), TK_VERIFY_ALG);
		BIO_free(b);
	}
	/* Nor can HS256 be allowed. */
	tk_verifier *v = tk_verifier_new();
	TEST_ASSERT(tk_verifier_set_algorithms(v, "HS256", errbuf, sizeof(errbuf)) != 0);
	TEST_ASSERT(tk_verifier_set_algorithms(v, "ES256 HS256", errbuf, sizeof(errbuf)) != 0);
	tk_verifier_free(v);
}

static void test_hs256_with_public_key_jwk(void)
{
	json_t *set = json_loads(jwks, 0, NULL);
	size_t i;
	json_t *k;

	TEST_ASSERT(set != NULL);
	json_array_foreach(json_object_get(set, "keys"), i, k) {
		char *one = json_dumps(k, JSON_COMPACT);
		const char *kid = json_string_value(json_object_get(k, "kid"));
		EXPECT(hs256_token(kid, (unsigned char *)one, strlen(one)), TK_VERIFY_ALG);
		free(one);
	}
	/* The whole JWKS text as the HMAC key, and other HS variants. */
	EXPECT(hs256_token(keys[K_ES_A].kid, (const unsigned char *)jwks, strlen(jwks)),
	       TK_VERIFY_ALG);
	json_t *h = json_pack("{s:s, s:s, s:s}", "alg", "HS512", "kid", keys[K_ES_A].kid, "typ",
	                      "at+jwt");
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_ALG);
	h = json_pack("{s:s, s:s, s:s}", "alg", "hs256", "kid", keys[K_ES_A].kid, "typ", "at+jwt");
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_ALG);
	json_decref(set);
}

/* ------------------------------------------------------------------------ */
/* C4: kid                                                                  */

static void test_unknown_kid(void)
{
	const char *kids[] = { "nope", "../../etc/passwd", "' OR 1=1 --", "", "\xc3\xa9" };
	for (size_t i = 0; i < sizeof(kids) / sizeof(kids[0]); i++) {
		json_t *h = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "kid", kids[i], "typ",
		                      "at+jwt");
		EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_KID_UNKNOWN);
	}
	/* A 5000-byte kid (the whole token stays under 8 KiB). */
	char *big = malloc(5001);
	memset(big, 'k', 5000);
	big[5000] = '\0';
	json_t *h = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "kid", big, "typ", "at+jwt");
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_KID_UNKNOWN);
	free(big);
	/* A kid differing from a real one only by case or a suffix. */
	char kid[128];
	snprintf(kid, sizeof(kid), "%sx", keys[K_ES_A].kid);
	h = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "kid", kid, "typ", "at+jwt");
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_KID_UNKNOWN);
	/* "kid\u0000..." is refused by the JSON parser (NUL in a string). */
	char raw[512];
	snprintf(raw, sizeof(raw), "{\"alg\":\"ES256\",\"kid\":\"%s\\u0000x\",\"typ\":\"at+jwt\"}",
	         keys[K_ES_A].kid);
	char *pay = claims_text();
	EXPECT(forge_raw(raw, pay, K_ES_A), TK_VERIFY_MALFORMED);
	free(pay);
}

static void test_kid_missing_or_not_string(void)
{
	json_t *h = json_pack("{s:s, s:s}", "alg", "ES256", "typ", "at+jwt");
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_KID_MISSING);
	h = json_pack("{s:s, s:i, s:s}", "alg", "ES256", "kid", 1, "typ", "at+jwt");
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_KID_MISSING);
	h = json_pack("{s:s, s:[s], s:s}", "alg", "ES256", "kid", keys[K_ES_A].kid, "typ", "at+jwt");
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_KID_MISSING);
	h = json_pack("{s:s, s:n, s:s}", "alg", "ES256", "kid", "typ", "at+jwt");
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_KID_MISSING);
}

/* A known kid with another key's signature. */
static void test_kid_other_keys_signature(void)
{
	/* Header names key A, signature made with key B (same alg). */
	EXPECT(forge(std_header(K_ES_A), std_claims(), K_ES_B), TK_VERIFY_SIGNATURE);
	EXPECT(forge(std_header(K_ES_B), std_claims(), K_ES_A), TK_VERIFY_SIGNATURE);
	/* A real minted token from key B, relabelled with key A's kid. */
	json_t *h = std_header(K_ES_A);
	char *hs = json_dumps(h, JSON_COMPACT), *hb = b64(hs, strlen(hs));
	char *t = mint_std(K_ES_B);
	const char *rest = strchr(t, '.');
	size_t n = strlen(hb) + strlen(rest) + 1;
	char *t2 = malloc(n);
	snprintf(t2, n, "%s%s", hb, rest);
	EXPECT(t2, TK_VERIFY_SIGNATURE);
	free(t);
	free(hb);
	free(hs);
	json_decref(h);
}

static void test_tampered_payload(void)
{
	/* A valid token whose payload is swapped for another (higher scope). */
	char *good = mint_std(K_ES_A);
	json_t *c = std_claims();
	json_object_set_new(c, "scope", json_string("read write admin"));
	char *ps = json_dumps(c, JSON_COMPACT), *pb = b64(ps, strlen(ps));
	const char *d1 = strchr(good, '.'), *d2 = strchr(d1 + 1, '.');
	size_t n = strlen(good) + strlen(pb) + 1;
	char *t = malloc(n);
	snprintf(t, n, "%.*s.%s%s", (int)(d1 - good), good, pb, d2);
	EXPECT(t, TK_VERIFY_SIGNATURE);
	/* One flipped signature character. */
	t = strdup(good);
	size_t last = strlen(t) - 3;
	t[last] = t[last] == 'A' ? 'B' : 'A';
	EXPECT(t, TK_VERIFY_SIGNATURE);
	/* Signature of another token. */
	char *other = mint_std(K_ES_A);
	const char *os = strrchr(other, '.');
	n = strlen(good) + strlen(os) + 1;
	t = malloc(n);
	snprintf(t, n, "%.*s%s", (int)(d2 - good), good, os);
	EXPECT(t, TK_VERIFY_SIGNATURE);
	free(other);
	free(ps);
	free(pb);
	json_decref(c);
	free(good);
}

/* ------------------------------------------------------------------------ */
/* C3: typ                                                                  */

static void expect_typ(json_t *typ, int want, int line)
{
	json_t *h = json_pack("{s:s, s:s}", "alg", "ES256", "kid", keys[K_ES_A].kid);
	if (typ != NULL)
		json_object_set_new(h, "typ", typ);
	expect_v(ver, forge(h, std_claims(), K_ES_A), want, line);
}

static void test_typ(void)
{
	expect_typ(NULL, TK_VERIFY_TYP, __LINE__);
	expect_typ(json_string("JWT"), TK_VERIFY_TYP, __LINE__);
	expect_typ(json_string("jwt"), TK_VERIFY_TYP, __LINE__);
	expect_typ(json_string("application/jwt"), TK_VERIFY_TYP, __LINE__);
	expect_typ(json_string("at+jwt "), TK_VERIFY_TYP, __LINE__);
	expect_typ(json_string("atjwt"), TK_VERIFY_TYP, __LINE__);
	expect_typ(json_string("application/at+jwt;x=1"), TK_VERIFY_TYP, __LINE__);
	expect_typ(json_string(""), TK_VERIFY_TYP, __LINE__);
	expect_typ(json_integer(1), TK_VERIFY_TYP, __LINE__);
	expect_typ(json_null(), TK_VERIFY_TYP, __LINE__);
	expect_typ(json_string("at+jwt"), TK_VERIFY_OK, __LINE__);
	expect_typ(json_string("at+JWT"), TK_VERIFY_OK, __LINE__);
	expect_typ(json_string("AT+JWT"), TK_VERIFY_OK, __LINE__);
	expect_typ(json_string("application/at+jwt"), TK_VERIFY_OK, __LINE__);
	expect_typ(json_string("Application/AT+jwt"), TK_VERIFY_OK, __LINE__);
}

/* ------------------------------------------------------------------------ */
/* C4: header parameters that would pick keys from the token                */

static void test_forbidden_header_params(void)
{
	const char *names[] = { "jku", "x5u", "jwk", "x5c" };
	for (size_t i = 0; i < 4; i++) {
		json_t *h = std_header(K_ES_A);
		if (strcmp(names[i], "jwk") == 0)
			json_object_set_new(h, "jwk", json_pack("{s:s}", "kty", "EC"));
		else if (strcmp(names[i], "x5c") == 0)
			json_object_set_new(h, "x5c", json_pack("[s]", "MIIB"));
		else
			json_object_set_new(h, names[i], json_string("http://127.0.0.1:1/keys"));
		EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_HEADER_PARAM);
	}
	/* Harmless parameters are ignored. */
	json_t *h = std_header(K_ES_A);
	json_object_set_new(h, "cty", json_string("x"));
	json_object_set_new(h, "x5t#S256", json_string("abc"));
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_OK);
}

static void test_crit(void)
{
	json_t *h = std_header(K_ES_A);
	json_object_set_new(h, "crit", json_pack("[s]", "exp"));
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_CRIT);
	h = std_header(K_ES_A);
	json_object_set_new(h, "crit", json_array());
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_CRIT);
	h = std_header(K_ES_A);
	json_object_set_new(h, "crit", json_pack("[s]", "b64"));
	json_object_set_new(h, "b64", json_false());
	EXPECT(forge(h, std_claims(), K_ES_A), TK_VERIFY_CRIT);
}

/* ------------------------------------------------------------------------ */
/* C7: claims                                                               */

static void expect_claims(json_t *c, int want, int line)
{
	expect_v(ver, forge(std_header(K_ES_A), c, K_ES_A), want, line);
}

static json_t *without(const char *name)
{
	json_t *c = std_claims();
	json_object_del(c, name);
	return c;
}

static json_t *with(const char *name, json_t *value)
{
	json_t *c = std_claims();
	json_object_set_new(c, name, value);
	return c;
}

static void test_missing_claims(void)
{
	expect_claims(without("exp"), TK_VERIFY_MISSING_CLAIM, __LINE__);
	expect_claims(without("iat"), TK_VERIFY_MISSING_CLAIM, __LINE__);
	expect_claims(without("jti"), TK_VERIFY_MISSING_CLAIM, __LINE__);
	expect_claims(without("iss"), TK_VERIFY_MISSING_CLAIM, __LINE__);
	expect_claims(without("sub"), TK_VERIFY_MISSING_CLAIM, __LINE__);
	expect_claims(without("client_id"), TK_VERIFY_MISSING_CLAIM, __LINE__);
	/* Optional ones. */
	expect_claims(without("nbf"), TK_VERIFY_OK, __LINE__);
	expect_claims(without("scope"), TK_VERIFY_OK, __LINE__);
	expect_claims(without("acct"), TK_VERIFY_OK, __LINE__);
	expect_claims(without("aud"), TK_VERIFY_OK, __LINE__);   /* no audience required */
	/* The reason names the claim. */
	char *t = forge(std_header(K_ES_A), without("jti"), K_ES_A);
	TEST_ASSERT(tk_verify_at(ver, t, strlen(t), NOW, NULL, errbuf, sizeof(errbuf)) ==
	            TK_VERIFY_MISSING_CLAIM);
	TEST_ASSERT(strstr(errbuf, "\"jti\"") != NULL);
	free(t);
}

static void test_claim_types(void)
{
	char num[32];
	snprintf(num, sizeof(num), "%lld", (long long)(NOW + 600));
	expect_claims(with("exp", json_string(num)), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("exp", json_real((double)(NOW + 600))), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("exp", json_real((double)(NOW + 600) + 0.5)), TK_VERIFY_CLAIM_TYPE,
	              __LINE__);
	expect_claims(with("exp", json_true()), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("exp", json_null()), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("iat", json_string("0")), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("iat", json_real(1.0)), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("nbf", json_real(1.0)), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("nbf", json_string("1")), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("jti", json_integer(7)), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("jti", json_string("")), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("iss", json_pack("[s]", ISS)), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("sub", json_integer(1)), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("client_id", json_null()), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("scope", json_pack("[s]", "read")), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("acct", json_integer(3)), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("aud", json_integer(3)), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("aud", json_pack("[s,i]", AUD, 1)), TK_VERIFY_CLAIM_TYPE, __LINE__);
	expect_claims(with("aud", json_pack("{s:s}", "a", AUD)), TK_VERIFY_CLAIM_TYPE, __LINE__);

	/* Exponent forms are reals in JSON, and integers too large are refused. */
	char pay[512];
	snprintf(pay, sizeof(pay),
	         "{\"iss\":\"" ISS "\",\"sub\":\"s\",\"client_id\":\"c\",\"jti\":\"j\","
	         "\"iat\":%lld,\"exp\":2e9}", (long long)NOW);
	char *h = header_text(K_ES_A);
	EXPECT(forge_raw(h, pay, K_ES_A), TK_VERIFY_CLAIM_TYPE);
	snprintf(pay, sizeof(pay),
	         "{\"iss\":\"" ISS "\",\"sub\":\"s\",\"client_id\":\"c\",\"jti\":\"j\","
	         "\"iat\":%lld,\"exp\":99999999999999999999999}", (long long)NOW);
	EXPECT(forge_raw(h, pay, K_ES_A), TK_VERIFY_MALFORMED);
	snprintf(pay, sizeof(pay),
	         "{\"iss\":\"" ISS "\",\"sub\":\"s\",\"client_id\":\"c\",\"jti\":\"j\","
	         "\"iat\":%lld,\"exp\":%lld}", (long long)NOW, (long long)NOW + 60);
	EXPECT(forge_raw(h, pay, K_ES_A), TK_VERIFY_OK);
	free(h);
}

static void test_expired(void)
{
	static const char *const aud[] = { AUD };
	/* Default leeway 30 s. */
	EXPECT(mint(K_ES_A, ISS, aud, 1, NULL, NOW - 700, NOW - 100), TK_VERIFY_EXPIRED);
	EXPECT(mint(K_ES_A, ISS, aud, 1, NULL, NOW - 700, NOW - TK_VERIFY_LEEWAY_DEFAULT),
	       TK_VERIFY_EXPIRED);
	EXPECT(mint(K_ES_A, ISS, aud, 1, NULL, NOW - 700, NOW - TK_VERIFY_LEEWAY_DEFAULT + 1),
	       TK_VERIFY_OK);
	/* Leeway 0: exp == now is expired, exp == now + 1 is not. */
	tk_verifier *v = new_verifier();
	TEST_ASSERT(tk_verifier_set_leeway(v, 0, errbuf, sizeof(errbuf)) == 0);
	EXPECT_V(v, mint(K_ES_A, ISS, aud, 1, NULL, NOW - 700, NOW), TK_VERIFY_EXPIRED);
	EXPECT_V(v, mint(K_ES_A, ISS, aud, 1, NULL, NOW - 700, NOW + 1), TK_VERIFY_OK);
	/* Expired long ago, and exp at the edges of the integer range. */
	EXPECT_V(v, forge(std_header(K_ES_A), with("exp", json_integer(0)), K_ES_A),
	         TK_VERIFY_EXPIRED);
	EXPECT_V(v, forge(std_header(K_ES_A), with("exp", json_integer(INT64_MIN)), K_ES_A),
	         TK_VERIFY_EXPIRED);
	EXPECT_V(v, forge(std_header(K_ES_A), with("exp", json_integer(INT64_MAX)), K_ES_A),
	         TK_VERIFY_OK);
	tk_verifier_free(v);
}

static void test_nbf_in_future(void)
{
	json_int_t lw = TK_VERIFY_LEEWAY_DEFAULT;
	expect_claims(with("nbf", json_integer(NOW + lw + 1)), TK_VERIFY_NOT_YET_VALID, __LINE__);
	expect_claims(with("nbf", json_integer(NOW + 3600)), TK_VERIFY_NOT_YET_VALID, __LINE__);
	expect_claims(with("nbf", json_integer(INT64_MAX)), TK_VERIFY_NOT_YET_VALID, __LINE__);
	expect_claims(with("nbf", json_integer(NOW + lw)), TK_VERIFY_OK, __LINE__);
	/* A minted token from the future (nbf = iat). */
	static const char *const aud[] = { AUD };
	EXPECT(mint(K_ES_A, ISS, aud, 1, NULL, NOW + 300, NOW + 900), TK_VERIFY_NOT_YET_VALID);
}

static void test_iat_in_future(void)
{
	json_int_t lw = TK_VERIFY_LEEWAY_DEFAULT;
	json_t *c = with("iat", json_integer(NOW + lw + 1));
	json_object_del(c, "nbf");
	expect_claims(c, TK_VERIFY_IAT_FUTURE, __LINE__);
	c = with("iat", json_integer(NOW + lw));
	json_object_del(c, "nbf");
	expect_claims(c, TK_VERIFY_OK, __LINE__);
	c = with("iat", json_integer(INT64_MAX));
	json_object_del(c, "nbf");
	expect_claims(c, TK_VERIFY_IAT_FUTURE, __LINE__);
}

static void test_wrong_issuer(void)
{
	static const char *const aud[] = { AUD };
	EXPECT(mint(K_ES_A, "https://evil.test", aud, 1, NULL, NOW, NOW + 60), TK_VERIFY_ISSUER);
	EXPECT(mint(K_ES_A, ISS "/", aud, 1, NULL, NOW, NOW + 60), TK_VERIFY_ISSUER);
	EXPECT(mint(K_ES_A, "HTTPS://ISSUER.TEST", aud, 1, NULL, NOW, NOW + 60), TK_VERIFY_ISSUER);
	expect_claims(with("iss", json_string("https://issuer.tes")), TK_VERIFY_ISSUER, __LINE__);
	/* The reason does not repeat the token's issuer. */
	char *t = mint(K_ES_A, "https://evil.test", aud, 1, NULL, NOW, NOW + 60);
	TEST_ASSERT(tk_verify_at(ver, t, strlen(t), NOW, NULL, errbuf, sizeof(errbuf)) ==
	            TK_VERIFY_ISSUER);
	TEST_ASSERT(strstr(errbuf, "evil") == NULL);
	free(t);
}

static void test_wrong_audience(void)
{
	static const char *const good[] = { AUD };
	static const char *const bad[] = { "https://other.test" };
	static const char *const arr_good[] = { "https://a.test", "https://b.test", AUD };
	static const char *const arr_bad[] = { "https://a.test", "https://api.test/" };
	tk_verifier *v = new_verifier();

	TEST_ASSERT(tk_verifier_set_audience(v, AUD, errbuf, sizeof(errbuf)) == 0);
	EXPECT_V(v, mint(K_ES_A, ISS, good, 1, NULL, NOW, NOW + 60), TK_VERIFY_OK);
	EXPECT_V(v, mint(K_ES_A, ISS, bad, 1, NULL, NOW, NOW + 60), TK_VERIFY_AUDIENCE);
	EXPECT_V(v, mint(K_ES_A, ISS, arr_good, 3, NULL, NOW, NOW + 60), TK_VERIFY_OK);
	EXPECT_V(v, mint(K_ES_A, ISS, arr_bad, 2, NULL, NOW, NOW + 60), TK_VERIFY_AUDIENCE);
	EXPECT_V(v, forge(std_header(K_ES_A), with("aud", json_array()), K_ES_A),
	         TK_VERIFY_AUDIENCE);
	EXPECT_V(v, forge(std_header(K_ES_A), with("aud", json_string("")), K_ES_A),
	         TK_VERIFY_AUDIENCE);
	EXPECT_V(v, forge(std_header(K_ES_A), without("aud"), K_ES_A), TK_VERIFY_MISSING_CLAIM);
	/* Clearing the requirement. */
	TEST_ASSERT(tk_verifier_set_audience(v, NULL, errbuf, sizeof(errbuf)) == 0);
	EXPECT_V(v, mint(K_ES_A, ISS, bad, 1, NULL, NOW, NOW + 60), TK_VERIFY_OK);
	tk_verifier_free(v);
}

static void test_required_scopes(void)
{
	static const char *const aud[] = { AUD };
	tk_verifier *v = new_verifier();

	TEST_ASSERT(tk_verifier_set_scopes(v, "read write", errbuf, sizeof(errbuf)) == 0);
	EXPECT_V(v, mint(K_ES_A, ISS, aud, 1, "read write", NOW, NOW + 60), TK_VERIFY_OK);
	EXPECT_V(v, mint(K_ES_A, ISS, aud, 1, "admin write read", NOW, NOW + 60), TK_VERIFY_OK);
	EXPECT_V(v, mint(K_ES_A, ISS, aud, 1, "read", NOW, NOW + 60), TK_VERIFY_SCOPE);
	EXPECT_V(v, mint(K_ES_A, ISS, aud, 1, "write", NOW, NOW + 60), TK_VERIFY_SCOPE);
	EXPECT_V(v, mint(K_ES_A, ISS, aud, 1, NULL, NOW, NOW + 60), TK_VERIFY_SCOPE);
	EXPECT_V(v, forge(std_header(K_ES_A), with("scope", json_string("readwrite")), K_ES_A),
	         TK_VERIFY_SCOPE);
	EXPECT_V(v, forge(std_header(K_ES_A), with("scope", json_string("read write:x")), K_ES_A),
	         TK_VERIFY_SCOPE);
	EXPECT_V(v, forge(std_header(K_ES_A), with("scope", json_string("READ WRITE")), K_ES_A),
	         TK_VERIFY_SCOPE);
	EXPECT_V(v, forge(std_header(K_ES_A), with("scope", json_string("")), K_ES_A),
	         TK_VERIFY_SCOPE);
	TEST_ASSERT(tk_verifier_set_scopes(v, "read", errbuf, sizeof(errbuf)) == 0);
	EXPECT_V(v, mint(K_ES_A, ISS, aud, 1, "read", NOW, NOW + 60), TK_VERIFY_OK);
	/* Invalid required-scope syntax is refused at setup. */
	TEST_ASSERT(tk_verifier_set_scopes(v, "read  write", errbuf, sizeof(errbuf)) != 0);
	TEST_ASSERT(tk_verifier_set_scopes(v, "a\"b", errbuf, sizeof(errbuf)) != 0);
	TEST_ASSERT(tk_verifier_set_scopes(v, "", errbuf, sizeof(errbuf)) == 0);
	EXPECT_V(v, mint(K_ES_A, ISS, aud, 1, NULL, NOW, NOW + 60), TK_VERIFY_OK);
	tk_verifier_free(v);
}

/* ------------------------------------------------------------------------ */
/* F7 / C7: size and encoding, before any signature work                     */

static void test_token_over_8k(void)
{
	/* Garbage of 8193 bytes and 1 MiB: refused on length alone. */
	size_t big = 1024 * 1024;
	char *g = malloc(big);
	memset(g, 'A', big);
	g[100] = '.';
	g[200] = '.';
	TEST_ASSERT(tk_verify_at(ver, g, TK_VERIFY_TOKEN_MAX + 1, NOW, NULL, errbuf,
	                         sizeof(errbuf)) == TK_VERIFY_TOO_LONG);
	TEST_ASSERT(tk_verify_at(ver, g, big, NOW, NULL, errbuf, sizeof(errbuf)) ==
	            TK_VERIFY_TOO_LONG);
	free(g);

	/* Properly signed tokens of exactly 8192 bytes (accepted) and a few
	 * bytes more (refused), made by padding a claim. */
	int found_ok = 0, found_over = 0;
	for (size_t pad = 5500; pad < 6200 && !(found_ok && found_over); pad++) {
		char *s = malloc(pad + 1);
		memset(s, 'p', pad);
		s[pad] = '\0';
		char *t = forge(std_header(K_ES_A), with("pad", json_string(s)), K_ES_A);
		size_t n = strlen(t);
		free(s);
		if (n == TK_VERIFY_TOKEN_MAX && !found_ok) {
			found_ok = 1;
			EXPECT(t, TK_VERIFY_OK);
		} else if (n > TK_VERIFY_TOKEN_MAX && !found_over) {
			found_over = 1;
			EXPECT(t, TK_VERIFY_TOO_LONG);
		} else {
			free(t);
		}
	}
	TEST_ASSERT(found_ok && found_over);
}

/* Replace segment `seg` (0..2) of a valid token with `repl`. */
static char *replace_segment(const char *tok, int seg, const char *repl)
{
	const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
	size_t n = strlen(tok) + strlen(repl) + 1;
	char *out = malloc(n);
	if (seg == 0)
		snprintf(out, n, "%s%s", repl, d1);
	else if (seg == 1)
		snprintf(out, n, "%.*s%s%s", (int)(d1 - tok + 1), tok, repl, d2);
	else
		snprintf(out, n, "%.*s%s", (int)(d2 - tok + 1), tok, repl);
	return out;
}

static char *segment(const char *tok, int seg)
{
	const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
	const char *s = seg == 0 ? tok : seg == 1 ? d1 + 1 : d2 + 1;
	const char *e = seg == 0 ? d1 : seg == 1 ? d2 : tok + strlen(tok);
	return strndup(s, (size_t)(e - s));
}

static void test_noncanonical_base64url(void)
{
	char *good = mint_std(K_ES_A);
	char buf[9000];

	for (int seg = 0; seg < 3; seg++) {
		char *s = segment(good, seg);
		size_t n = strlen(s);
		/* '=' padding (to a multiple of 4, and a lone '='). */
		snprintf(buf, sizeof(buf), "%s%s", s, n % 4 == 2 ? "==" : n % 4 == 3 ? "=" : "====");
		EXPECT(replace_segment(good, seg, buf), TK_VERIFY_MALFORMED);
		snprintf(buf, sizeof(buf), "%s=", s);
		EXPECT(replace_segment(good, seg, buf), TK_VERIFY_MALFORMED);
		/* '+' and '/' in place of '-' and '_' (or anywhere). */
		snprintf(buf, sizeof(buf), "%s", s);
		buf[n / 2] = '+';
		EXPECT(replace_segment(good, seg, buf), TK_VERIFY_MALFORMED);
		buf[n / 2] = '/';
		EXPECT(replace_segment(good, seg, buf), TK_VERIFY_MALFORMED);
		/* Whitespace inside, before, after. */
		snprintf(buf, sizeof(buf), "%.*s %s", (int)(n / 2), s, s + n / 2);
		EXPECT(replace_segment(good, seg, buf), TK_VERIFY_MALFORMED);
		snprintf(buf, sizeof(buf), "%.*s\n%s", (int)(n / 2), s, s + n / 2);
		EXPECT(replace_segment(good, seg, buf), TK_VERIFY_MALFORMED);
		snprintf(buf, sizeof(buf), " %s", s);
		EXPECT(replace_segment(good, seg, buf), TK_VERIFY_MALFORMED);
		snprintf(buf, sizeof(buf), "%s\t", s);
		EXPECT(replace_segment(good, seg, buf), TK_VERIFY_MALFORMED);
		/* Length 1 mod 4. */
		if (n % 4 == 0) {
			snprintf(buf, sizeof(buf), "%sA", s);
		} else {
			snprintf(buf, sizeof(buf), "%.*s", (int)(n - n % 4 + 1), s);
		}
		EXPECT(replace_segment(good, seg, buf), TK_VERIFY_MALFORMED);
		/* Non-zero trailing bits: same bytes, another last character. */
		if (n % 4 != 0) {
			static const char A[] =
				"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
			int v = (int)(strchr(A, s[n - 1]) - A);
			snprintf(buf, sizeof(buf), "%s", s);
			buf[n - 1] = A[v | 1];          /* lowest bit is always a trailing one */
			EXPECT(replace_segment(good, seg, buf), TK_VERIFY_MALFORMED);
		}
		/* Other bytes: NUL, high-bit, '.' handled by the segment count. */
		snprintf(buf, sizeof(buf), "%s", s);
		buf[1] = (char)0xc3;
		EXPECT(replace_segment(good, seg, buf), TK_VERIFY_MALFORMED);
		free(s);
	}
	/* The ES256 signature segment in standard base64 with padding. */
	{
		char *s = segment(good, 2);
		unsigned char raw[128];
		long rl = tk_b64url_decode(s, strlen(s), raw);
		TEST_ASSERT(rl == 64);
		unsigned char std[200];
		EVP_EncodeBlock(std, raw, (int)rl);
		EXPECT(replace_segment(good, 2, (char *)std), TK_VERIFY_MALFORMED);
		free(s);
	}
	/* A NUL byte inside the token (length says it is there). */
	{
		size_t n = strlen(good);
		char *t = strdup(good);
		t[5] = '\0';
		TEST_ASSERT(tk_verify_at(ver, t, n, NOW, NULL, errbuf, sizeof(errbuf)) ==
		            TK_VERIFY_MALFORMED);
		free(t);
	}
	free(good);
}

static void test_segments(void)
{
	char *good = mint_std(K_ES_A);
	char buf[9000];
	char *h = segment(good, 0), *p = segment(good, 1), *s = segment(good, 2);

	snprintf(buf, sizeof(buf), "%s.%s", h, p);
	EXPECT(strdup(buf), TK_VERIFY_MALFORMED);
	snprintf(buf, sizeof(buf), "%s.%s.%s.", h, p, s);
	EXPECT(strdup(buf), TK_VERIFY_MALFORMED);
	snprintf(buf, sizeof(buf), "%s.%s.%s.%s", h, p, s, s);
	EXPECT(strdup(buf), TK_VERIFY_MALFORMED);
	snprintf(buf, sizeof(buf), ".%s.%s", p, s);
	EXPECT(strdup(buf), TK_VERIFY_MALFORMED);
	snprintf(buf, sizeof(buf), "%s..%s", h, s);
	EXPECT(strdup(buf), TK_VERIFY_MALFORMED);
	snprintf(buf, sizeof(buf), "%s.%s.", h, p);       /* empty signature */
	EXPECT(strdup(buf), TK_VERIFY_SIGNATURE);
	/* JWE-like five segments. */
	snprintf(buf, sizeof(buf), "%s.%s.%s.%s.%s", h, p, s, p, s);
	EXPECT(strdup(buf), TK_VERIFY_MALFORMED);
	EXPECT(strdup(""), TK_VERIFY_MALFORMED);
	EXPECT(strdup(".."), TK_VERIFY_MALFORMED);
	EXPECT(strdup("a.b.c"), TK_VERIFY_MALFORMED);        /* 1 mod 4 */
	free(h);
	free(p);
	free(s);
	free(good);
}

/* ------------------------------------------------------------------------ */
/* C5: ES256 signature encodings                                            */

/* A valid ES256 token (key A) split into signing input and raw R||S. */
static char *es256_parts(unsigned char rs[64])
{
	char *t = forge(std_header(K_ES_A), std_claims(), K_ES_A);
	char *s = segment(t, 2);
	TEST_ASSERT(tk_b64url_decode(s, strlen(s), rs) == 64);
	*strrchr(t, '.') = '\0';
	free(s);
	return t;                       /* the signing input */
}

static void test_es256_signature_lengths(void)
{
	unsigned char rs[64], sig[80];
	char *in = es256_parts(rs);

	EXPECT(with_sig(in, rs, 64), TK_VERIFY_OK);
	EXPECT(with_sig(in, rs, 63), TK_VERIFY_SIGNATURE);
	EXPECT(with_sig(in, rs + 1, 63), TK_VERIFY_SIGNATURE);
	memcpy(sig, rs, 64);
	sig[64] = 0;
	EXPECT(with_sig(in, sig, 65), TK_VERIFY_SIGNATURE);
	sig[0] = 0;
	memcpy(sig + 1, rs, 64);
	EXPECT(with_sig(in, sig, 65), TK_VERIFY_SIGNATURE);
	EXPECT(with_sig(in, rs, 0), TK_VERIFY_SIGNATURE);
	EXPECT(with_sig(in, rs, 32), TK_VERIFY_SIGNATURE);

	/* The same signature DER-encoded (what OpenSSL produces) is refused. */
	ECDSA_SIG *es = ECDSA_SIG_new();
	unsigned char *der = NULL;
	int dl;
	ECDSA_SIG_set0(es, BN_bin2bn(rs, 32, NULL), BN_bin2bn(rs + 32, 32, NULL));
	dl = i2d_ECDSA_SIG(es, &der);
	TEST_ASSERT(dl > 0);
	EXPECT(with_sig(in, der, (size_t)dl), TK_VERIFY_SIGNATURE);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	free(in);
}

static void test_es256_r_or_s_zero(void)
{
	unsigned char rs[64], sig[64];
	char *in = es256_parts(rs);

	memcpy(sig, rs, 64);
	memset(sig, 0, 32);                     /* r = 0 */
	EXPECT(with_sig(in, sig, 64), TK_VERIFY_SIGNATURE);
	memcpy(sig, rs, 64);
	memset(sig + 32, 0, 32);                /* s = 0 */
	EXPECT(with_sig(in, sig, 64), TK_VERIFY_SIGNATURE);
	memset(sig, 0, 64);                     /* r = s = 0 (CVE-2022-21449) */
	EXPECT(with_sig(in, sig, 64), TK_VERIFY_SIGNATURE);
	memset(sig, 0xff, 64);                  /* r, s > n */
	EXPECT(with_sig(in, sig, 64), TK_VERIFY_SIGNATURE);
	free(in);
}

static const char P256_N[] =
	"FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551";

static void test_es256_r_ge_n(void)
{
	unsigned char rs[64], sig[64];
	char *in = es256_parts(rs);
	BIGNUM *n = NULL, *r = BN_bin2bn(rs, 32, NULL), *s = BN_bin2bn(rs + 32, 32, NULL);

	TEST_ASSERT(BN_hex2bn(&n, P256_N) > 0);
	/* r = n, and s = n */
	TEST_ASSERT(BN_bn2binpad(n, sig, 32) == 32);
	memcpy(sig + 32, rs + 32, 32);
	EXPECT(with_sig(in, sig, 64), TK_VERIFY_SIGNATURE);
	memcpy(sig, rs, 32);
	TEST_ASSERT(BN_bn2binpad(n, sig + 32, 32) == 32);
	EXPECT(with_sig(in, sig, 64), TK_VERIFY_SIGNATURE);
	/* r + n and s + n when they still fit in 32 bytes (same value mod n). */
	BIGNUM *t = BN_new();
	TEST_ASSERT(BN_add(t, r, n) == 1);
	if (BN_num_bytes(t) <= 32) {
		TEST_ASSERT(BN_bn2binpad(t, sig, 32) == 32);
		memcpy(sig + 32, rs + 32, 32);
		EXPECT(with_sig(in, sig, 64), TK_VERIFY_SIGNATURE);
	}
	TEST_ASSERT(BN_add(t, s, n) == 1);
	if (BN_num_bytes(t) <= 32) {
		memcpy(sig, rs, 32);
		TEST_ASSERT(BN_bn2binpad(t, sig + 32, 32) == 32);
		EXPECT(with_sig(in, sig, 64), TK_VERIFY_SIGNATURE);
	}
	BN_free(t);
	BN_free(n);
	BN_free(r);
	BN_free(s);
	free(in);
}

/*
 * ECDSA malleability: (r, n - s) is as valid as (r, s). OpenSSL accepts
 * high-s signatures and so does tk_verify (RFC 7518 does not require low s).
 * Consequence (documented in verify.h and SECURITY C5): a token string is not
 * an identity; dedupe and revoke by jti.
 */
static void test_es256_high_s_accepted(void)
{
	unsigned char rs[64], sig[64];
	char *in = es256_parts(rs);
	BIGNUM *n = NULL, *s = BN_bin2bn(rs + 32, 32, NULL), *ns = BN_new();

	TEST_ASSERT(BN_hex2bn(&n, P256_N) > 0);
	TEST_ASSERT(BN_sub(ns, n, s) == 1);
	memcpy(sig, rs, 32);
	TEST_ASSERT(BN_bn2binpad(ns, sig + 32, 32) == 32);
	TEST_ASSERT(memcmp(sig, rs, 64) != 0);
	EXPECT(with_sig(in, sig, 64), TK_VERIFY_OK);
	BN_free(n);
	BN_free(s);
	BN_free(ns);
	free(in);
}

static void test_rs256_and_eddsa_signature_sizes(void)
{
	char *t = forge(std_header(K_RSA), std_claims(), K_RSA);
	char *s = segment(t, 2);
	unsigned char raw[600];
	long n = tk_b64url_decode(s, strlen(s), raw);
	TEST_ASSERT(n == 256);
	*strrchr(t, '.') = '\0';
	EXPECT(with_sig(t, raw, 255), TK_VERIFY_SIGNATURE);
	memmove(raw + 1, raw, 256);
	raw[0] = 0;
	EXPECT(with_sig(t, raw, 257), TK_VERIFY_SIGNATURE);
	free(s);
	free(t);

	t = forge(std_header(K_ED), std_claims(), K_ED);
	s = segment(t, 2);
	n = tk_b64url_decode(s, strlen(s), raw);
	TEST_ASSERT(n == 64);
	*strrchr(t, '.') = '\0';
	EXPECT(with_sig(t, raw, 63), TK_VERIFY_SIGNATURE);
	raw[10] ^= 1;
	EXPECT(with_sig(t, raw, 64), TK_VERIFY_SIGNATURE);
	free(s);
	free(t);
}

/* ------------------------------------------------------------------------ */
/* JSON structure                                                           */

static void test_duplicate_header_members(void)
{
	char h[512];
	char *pay = claims_text();
	snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"at+jwt\",\"alg\":\"none\"}",
	         keys[K_ES_A].kid);
	EXPECT(forge_raw(h, pay, K_ES_A), TK_VERIFY_MALFORMED);
	snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"kid\":\"%s\",\"kid\":\"%s\",\"typ\":\"at+jwt\"}",
	         keys[K_ES_A].kid, keys[K_ES_B].kid);
	EXPECT(forge_raw(h, pay, K_ES_A), TK_VERIFY_MALFORMED);
	snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"JWT\",\"typ\":\"at+jwt\"}",
	         keys[K_ES_A].kid);
	EXPECT(forge_raw(h, pay, K_ES_A), TK_VERIFY_MALFORMED);
	/* The same member spelt with an escape is still a duplicate. */
	snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"at+jwt\",\"\\u0061lg\":\"none\"}",
	         keys[K_ES_A].kid);
	EXPECT(forge_raw(h, pay, K_ES_A), TK_VERIFY_MALFORMED);
	/* An escaped name alone is the member itself. */
	snprintf(h, sizeof(h), "{\"\\u0061lg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"at+jwt\"}",
	         keys[K_ES_A].kid);
	EXPECT(forge_raw(h, pay, K_ES_A), TK_VERIFY_OK);
	free(pay);
}

#define DUP_FMT "{\"iss\":\"" ISS "\",\"sub\":\"s\",\"client_id\":\"c\",\"jti\":\"j\"," \
                "\"iat\":%lld,\"exp\":%lld%s}"
#define DEPTH_FMT "{\"iss\":\"" ISS "\",\"sub\":\"s\",\"client_id\":\"c\",\"jti\":\"j\"," \
                  "\"iat\":%lld,\"exp\":%lld,\"x\":%s}"

static void test_duplicate_payload_members(void)
{
	char *h = header_text(K_ES_A);
	char pay[1024];
	snprintf(pay, sizeof(pay), DUP_FMT, (long long)NOW, (long long)NOW + 60, ",\"sub\":\"admin\"");
	EXPECT(forge_raw(h, pay, K_ES_A), TK_VERIFY_MALFORMED);
	snprintf(pay, sizeof(pay), DUP_FMT, (long long)NOW, (long long)NOW + 60,
	         ",\"exp\":9999999999");
	EXPECT(forge_raw(h, pay, K_ES_A), TK_VERIFY_MALFORMED);
	snprintf(pay, sizeof(pay), DUP_FMT, (long long)NOW, (long long)NOW + 60,
	         ",\"scope\":\"read\",\"scope\":\"admin\"");
	EXPECT(forge_raw(h, pay, K_ES_A), TK_VERIFY_MALFORMED);
	/* Same text without the duplicate verifies. */
	snprintf(pay, sizeof(pay), DUP_FMT, (long long)NOW, (long long)NOW + 60, "");
	EXPECT(forge_raw(h, pay, K_ES_A), TK_VERIFY_OK);
	free(h);
}

static void test_json_depth(void)
{
	char *h = header_text(K_ES_A);
	char pay[2048], nest[512];
	size_t o = 0;

	/* 31 levels inside the top-level object: 32 in all, accepted. */
	for (int i = 0; i < 31; i++)
		nest[o++] = '[';
	for (int i = 0; i < 31; i++)
		nest[o++] = ']';
	nest[o] = '\0';
	snprintf(pay, sizeof(pay), DEPTH_FMT, (long long)NOW, (long long)NOW + 60, nest);
	EXPECT(forge_raw(h, pay, K_ES_A), TK_VERIFY_OK);
	/* 33 in all: refused. */
	o = 0;
	for (int i = 0; i < 32; i++)
		nest[o++] = '[';
	for (int i = 0; i < 32; i++)
		nest[o++] = ']';
	nest[o] = '\0';
	snprintf(pay, sizeof(pay), DEPTH_FMT, (long long)NOW, (long long)NOW + 60, nest);
	EXPECT(forge_raw(h, pay, K_ES_A), TK_VERIFY_MALFORMED);
	/* Brackets inside strings do not count. */
	snprintf(pay, sizeof(pay), DEPTH_FMT, (long long)NOW, (long long)NOW + 60,
	         "\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[\"");
	EXPECT(forge_raw(h, pay, K_ES_A), TK_VERIFY_OK);
	/* A deep header. */
	char hdr[1024];
	o = (size_t)snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"at+jwt\",\"x\":",
	                     keys[K_ES_A].kid);
	for (int i = 0; i < 40; i++)
		hdr[o++] = '{', hdr[o++] = '"', hdr[o++] = 'a', hdr[o++] = '"', hdr[o++] = ':';
	hdr[o++] = '1';
	for (int i = 0; i < 41; i++)
		hdr[o++] = '}';
	hdr[o] = '\0';
	char *cl = claims_text();
	EXPECT(forge_raw(hdr, cl, K_ES_A), TK_VERIFY_MALFORMED);
	free(cl);
	free(h);
}

static void test_not_objects(void)
{
	char *cl = claims_text();
	char *h = header_text(K_ES_A);
	char buf[512];
	const char *bad[] = { "[]", "null", "\"at+jwt\"", "1", "{", "{}x", "{} {}", "\xff\xfe" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT(forge_raw(bad[i], cl, K_ES_A), TK_VERIFY_MALFORMED);
		EXPECT(forge_raw(h, bad[i], K_ES_A), TK_VERIFY_MALFORMED);
	}
	/* Invalid UTF-8 in a header string; trailing data after the header. */
	snprintf(buf, sizeof(buf), "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"at+jwt\",\"x\":\"\xc3\"}",
	         keys[K_ES_A].kid);
	EXPECT(forge_raw(buf, cl, K_ES_A), TK_VERIFY_MALFORMED);
	snprintf(buf, sizeof(buf), "%s ", h);      /* trailing whitespace is still JSON */
	EXPECT(forge_raw(buf, cl, K_ES_A), TK_VERIFY_OK);
	free(h);
	free(cl);
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */

static void test_algorithms_allowlist(void)
{
	tk_verifier *v = new_verifier();

	TEST_ASSERT(tk_verifier_set_algorithms(v, "ES256", errbuf, sizeof(errbuf)) == 0);
	EXPECT_V(v, mint_std(K_ES_A), TK_VERIFY_OK);
	EXPECT_V(v, mint_std(K_ED), TK_VERIFY_ALG);
	EXPECT_V(v, mint_std(K_RSA), TK_VERIFY_ALG);
	TEST_ASSERT(tk_verifier_set_algorithms(v, "RS256 EdDSA", errbuf, sizeof(errbuf)) == 0);
	EXPECT_V(v, mint_std(K_ES_A), TK_VERIFY_ALG);
	EXPECT_V(v, mint_std(K_ED), TK_VERIFY_OK);
	EXPECT_V(v, mint_std(K_RSA), TK_VERIFY_OK);
	TEST_ASSERT(tk_verifier_set_algorithms(v, "none", errbuf, sizeof(errbuf)) != 0);
	TEST_ASSERT(tk_verifier_set_algorithms(v, "", errbuf, sizeof(errbuf)) != 0);
	TEST_ASSERT(tk_verifier_set_algorithms(v, "es256", errbuf, sizeof(errbuf)) != 0);
	TEST_ASSERT(tk_verifier_set_algorithms(v, "ES384", errbuf, sizeof(errbuf)) != 0);
	TEST_ASSERT(tk_verifier_set_algorithms(v, "PS256", errbuf, sizeof(errbuf)) != 0);
	/* Failed calls leave the previous set. */
	EXPECT_V(v, mint_std(K_ES_A), TK_VERIFY_ALG);
	EXPECT_V(v, mint_std(K_ED), TK_VERIFY_OK);
	tk_verifier_free(v);
}

static void test_setters_and_not_ready(void)
{
	tk_verifier *v = tk_verifier_new();
	char *t = mint_std(K_ES_A);

	TEST_ASSERT(tk_verify_at(v, t, strlen(t), NOW, NULL, errbuf, sizeof(errbuf)) ==
	            TK_VERIFY_EINVAL);
	TEST_ASSERT(tk_verifier_load_jwks(v, jwks, strlen(jwks), errbuf, sizeof(errbuf)) == 0);
	TEST_ASSERT(tk_verify_at(v, t, strlen(t), NOW, NULL, errbuf, sizeof(errbuf)) ==
	            TK_VERIFY_EINVAL);       /* no issuer yet */
	TEST_ASSERT(tk_verifier_set_issuer(v, "", errbuf, sizeof(errbuf)) != 0);
	TEST_ASSERT(tk_verifier_set_issuer(v, NULL, errbuf, sizeof(errbuf)) != 0);
	TEST_ASSERT(tk_verifier_set_issuer(v, "https://x\n", errbuf, sizeof(errbuf)) != 0);
	TEST_ASSERT(tk_verifier_set_issuer(v, ISS, errbuf, sizeof(errbuf)) == 0);
	TEST_ASSERT(tk_verify_at(v, t, strlen(t), NOW, NULL, errbuf, sizeof(errbuf)) ==
	            TK_VERIFY_OK);
	TEST_ASSERT(tk_verifier_set_leeway(v, -1, errbuf, sizeof(errbuf)) != 0);
	TEST_ASSERT(tk_verifier_set_leeway(v, TK_VERIFY_LEEWAY_MAX + 1, errbuf, sizeof(errbuf)) != 0);
	TEST_ASSERT(tk_verifier_set_leeway(v, TK_VERIFY_LEEWAY_MAX, errbuf, sizeof(errbuf)) == 0);
	TEST_ASSERT(tk_verifier_set_audience(v, "a\x01", errbuf, sizeof(errbuf)) != 0);
	TEST_ASSERT(tk_verify_at(NULL, t, strlen(t), NOW, NULL, NULL, 0) == TK_VERIFY_EINVAL);
	TEST_ASSERT(tk_verify_at(v, NULL, 0, NOW, NULL, NULL, 0) == TK_VERIFY_EINVAL);
	TEST_ASSERT(tk_verify_at(v, t, strlen(t), INT64_MAX, NULL, NULL, 0) == TK_VERIFY_EINVAL);
	TEST_ASSERT(tk_verify_at(v, t, strlen(t), INT64_MIN, NULL, NULL, 0) == TK_VERIFY_EINVAL);
	TEST_ASSERT(tk_verifier_key_count(v) == K_COUNT);
	const char *kid = NULL, *alg = NULL;
	TEST_ASSERT(tk_verifier_key_at(v, 0, &kid, &alg) == 0);
	TEST_ASSERT_STR(kid, keys[0].kid);
	TEST_ASSERT_STR(alg, "ES256");
	TEST_ASSERT(tk_verifier_key_at(v, K_COUNT, &kid, &alg) == -1);
	tk_verifier_free(v);
	tk_verifier_free(NULL);
	tk_claims_release(NULL);
	free(t);
}

static void test_strerror(void)
{
	for (int c = TK_VERIFY_OK; c <= TK_VERIFY_STATUS_UNKNOWN; c++)
		TEST_ASSERT(strcmp(tk_verify_strerror(c), "unknown error") != 0);
	TEST_ASSERT_STR(tk_verify_strerror(-1), "unknown error");
	TEST_ASSERT_STR(tk_verify_strerror(TK_VERIFY_STATUS_UNKNOWN + 1), "unknown error");
	TEST_ASSERT_STR(tk_verify_strerror(TK_VERIFY_EXPIRED), "token expired");
}

/* ------------------------------------------------------------------------ */
/* C6: the JWKS                                                             */

/* The public JWK of key k as published by the signer (new reference). */
static json_t *published(int k)
{
	json_t *set = json_loads(jwks, 0, NULL);
	json_t *out = NULL, *e;
	size_t i;
	json_array_foreach(json_object_get(set, "keys"), i, e) {
		if (strcmp(json_string_value(json_object_get(e, "kid")), keys[k].kid) == 0)
			out = json_deep_copy(e);
	}
	json_decref(set);
	TEST_ASSERT(out != NULL);
	return out;
}

/* Load {"keys":[entries...]} (references stolen) into a fresh verifier:
 * returns the load result; *vout gets the verifier when asked. */
static int load_set(json_t *arr, tk_verifier **vout)
{
	json_t *set = json_pack("{s:o}", "keys", arr);
	char *txt = json_dumps(set, JSON_COMPACT);
	tk_verifier *v = tk_verifier_new();
	int rc;
	errbuf[0] = '\0';
	rc = tk_verifier_load_jwks(v, txt, strlen(txt), errbuf, sizeof(errbuf));
	TEST_ASSERT(tk_verifier_set_issuer(v, ISS, NULL, 0) == 0);
	if (vout)
		*vout = v;
	else
		tk_verifier_free(v);
	free(txt);
	json_decref(set);
	return rc;
}

static void expect_refused_set(json_t *arr, const char *needle, int line)
{
	int rc = load_set(arr, NULL);
	unit_checks++;
	if (rc == 0 || (needle && strstr(errbuf, needle) == NULL)) {
		unit_failures++;
		fprintf(stderr, "  line %d: JWKS load gave %d (%s), want refusal with \"%s\"\n", line,
		        rc, errbuf, needle ? needle : "");
	}
}

/* The public JWK of a generated key file of another kind (P-384, RSA-1024). */
static json_t *jwk_of_file(const char *path, const char *kid)
{
	EVP_PKEY *pk = read_pem(path);
	BIGNUM *a = NULL, *b = NULL;
	unsigned char buf[600];
	json_t *o = NULL;
	char *x, *y;
	int n;

	TEST_ASSERT(pk != NULL);
	if (EVP_PKEY_is_a(pk, "EC")) {
		TEST_ASSERT(EVP_PKEY_get_bn_param(pk, "qx", &a) == 1);
		TEST_ASSERT(EVP_PKEY_get_bn_param(pk, "qy", &b) == 1);
		n = (EVP_PKEY_get_bits(pk) + 7) / 8;
		BN_bn2binpad(a, buf, n);
		x = b64(buf, (size_t)n);
		BN_bn2binpad(b, buf, n);
		y = b64(buf, (size_t)n);
		o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-384", "x", x, "y", y,
		              "kid", kid);
	} else {
		TEST_ASSERT(EVP_PKEY_get_bn_param(pk, "n", &a) == 1);
		TEST_ASSERT(EVP_PKEY_get_bn_param(pk, "e", &b) == 1);
		n = BN_bn2bin(a, buf);
		x = b64(buf, (size_t)n);
		n = BN_bn2bin(b, buf);
		y = b64(buf, (size_t)n);
		o = json_pack("{s:s, s:s, s:s, s:s}", "kty", "RSA", "n", x, "e", y, "kid", kid);
	}
	free(x);
	free(y);
	BN_free(a);
	BN_free(b);
	EVP_PKEY_free(pk);
	return o;
}

static void test_jwks_refusals(void)
{
	json_t *k;

	/* Private material. */
	k = published(K_ES_A);
	json_object_set_new(k, "d", json_string("AAAA"));
	expect_refused_set(json_pack("[o]", k), "private", __LINE__);
	k = published(K_RSA);
	json_object_set_new(k, "p", json_string("AAAA"));
	expect_refused_set(json_pack("[o]", k), "private", __LINE__);
	/* Symmetric key, even next to a good one. */
	expect_refused_set(json_pack("[o, {s:s, s:s, s:s}]", published(K_ES_A), "kty", "oct",
	                             "k", "c2VjcmV0", "kid", "hmac"), "symmetric", __LINE__);
	expect_refused_set(json_pack("[o, {s:s, s:s}]", published(K_ES_A), "kty", "oct", "kid",
	                             "hmac"), "oct", __LINE__);
	/* Weak RSA, and P-384 claiming ES256. */
	expect_refused_set(json_pack("[o]", jwk_of_file(extra_paths[1], "weak")), "bits", __LINE__);
	k = jwk_of_file(extra_paths[1], "weak");
	json_object_set_new(k, "alg", json_string("RS256"));
	expect_refused_set(json_pack("[o]", k), "bits", __LINE__);
	k = jwk_of_file(extra_paths[0], "p384");
	json_object_set_new(k, "alg", json_string("ES256"));
	expect_refused_set(json_pack("[o]", k), "does not fit", __LINE__);
	/* alg that does not fit the kty. */
	k = published(K_ES_A);
	json_object_set_new(k, "alg", json_string("RS256"));
	expect_refused_set(json_pack("[o]", k), "does not fit", __LINE__);
	k = published(K_ED);
	json_object_set_new(k, "alg", json_string("ES256"));
	expect_refused_set(json_pack("[o]", k), "does not fit", __LINE__);
	k = published(K_ES_A);
	json_object_set_new(k, "alg", json_integer(1));
	expect_refused_set(json_pack("[o]", k), "alg", __LINE__);
	/* kid missing, empty, not a string, duplicate. */
	k = published(K_ES_A);
	json_object_del(k, "kid");
	expect_refused_set(json_pack("[o]", k), "kid", __LINE__);
	k = published(K_ES_A);
	json_object_set_new(k, "kid", json_string(""));
	expect_refused_set(json_pack("[o]", k), "kid", __LINE__);
	k = published(K_ES_A);
	json_object_set_new(k, "kid", json_integer(5));
	expect_refused_set(json_pack("[o]", k), "kid", __LINE__);
	k = published(K_ES_B);
	json_object_set_new(k, "kid", json_string(keys[K_ES_A].kid));
	expect_refused_set(json_pack("[o, o]", published(K_ES_A), k), "duplicate", __LINE__);
	/* Point off the curve; coordinates of the wrong size; bad base64url. */
	k = published(K_ES_A);
	{
		const char *y = json_string_value(json_object_get(k, "y"));
		char y2[64];
		snprintf(y2, sizeof(y2), "%s", y);
		y2[10] = y2[10] == 'A' ? 'B' : 'A';
		json_object_set_new(k, "y", json_string(y2));
	}
	expect_refused_set(json_pack("[o]", k), "valid", __LINE__);
	k = published(K_ES_A);
	json_object_set_new(k, "x", json_string("AAAA"));
	expect_refused_set(json_pack("[o]", k), "bytes", __LINE__);
	k = published(K_ED);
	{
		char x2[64];
		snprintf(x2, sizeof(x2), "%s=", json_string_value(json_object_get(k, "x")));
		json_object_set_new(k, "x", json_string(x2));
	}
	expect_refused_set(json_pack("[o]", k), "base64url", __LINE__);
	k = published(K_RSA);
	json_object_set_new(k, "e", json_string("AQAA"));      /* even exponent */
	expect_refused_set(json_pack("[o]", k), "exponent", __LINE__);
	k = published(K_RSA);
	json_object_set_new(k, "e", json_string("AAAAAQ"));    /* e = 1, with leading zeros */
	expect_refused_set(json_pack("[o]", k), "exponent", __LINE__);
	k = published(K_RSA);
	json_object_set_new(k, "e", json_string("AQ"));        /* e = 1 */
	expect_refused_set(json_pack("[o]", k), "exponent", __LINE__);
	/* An even modulus (OpenSSL's own RSA public check is not run: it is slow
	 * for large moduli; tokend checks what matters itself). */
	k = published(K_RSA);
	{
		const char *n = json_string_value(json_object_get(k, "n"));
		size_t len = strlen(n);
		char *n2 = strdup(n);
		/* 256 bytes = 341 sextets + 2 bits: the last character carries the
		 * two lowest bits of n in its bits 5..4; clear n's bit 0 (its bit 4). */
		static const char alpha[] =
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
		int v = (int)(strchr(alpha, n2[len - 1]) - alpha);
		n2[len - 1] = alpha[v & ~(1 << ((6 - (2048 % 6)) % 6))];
		json_object_set_new(k, "n", json_string(n2));
		free(n2);
	}
	expect_refused_set(json_pack("[o]", k), "odd", __LINE__);
	/* Not a set, empty set, nothing usable. */
	expect_refused_set(json_array(), "no usable", __LINE__);
	expect_refused_set(json_pack("[{s:s, s:s, s:s}]", "kty", "EC", "crv", "P-521", "kid", "x"),
	                   "no usable", __LINE__);
	expect_refused_set(json_pack("[i]", 1), "object", __LINE__);
	expect_refused_set(json_pack("[{s:s}]", "kid", "x"), "kty", __LINE__);

	tk_verifier *v = tk_verifier_new();
	const char *bad[] = { "", "[]", "{}", "{\"keys\":{}}", "{\"keys\":[]}x",
	                      "{\"keys\":[],\"keys\":[]}", "not json" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TEST_ASSERT(tk_verifier_load_jwks(v, bad[i], strlen(bad[i]), errbuf, sizeof(errbuf)) != 0);
	/* Too deep, too many keys, too big. */
	char deep[200];
	size_t o = (size_t)snprintf(deep, sizeof(deep), "{\"keys\":[],\"x\":");
	for (int i = 0; i < 40; i++)
		deep[o++] = '[';
	for (int i = 0; i < 40; i++)
		deep[o++] = ']';
	deep[o++] = '}';
	deep[o] = '\0';
	TEST_ASSERT(tk_verifier_load_jwks(v, deep, strlen(deep), errbuf, sizeof(errbuf)) != 0);
	json_t *many = json_array();
	for (int i = 0; i <= TK_VERIFY_MAX_KEYS; i++)
		json_array_append_new(many, json_pack("{s:s, s:s}", "kty", "EC", "use", "enc"));
	expect_refused_set(many, "keys", __LINE__);
	TEST_ASSERT(tk_verifier_load_jwks(v, jwks, TK_VERIFY_JWKS_MAX + 1, errbuf, sizeof(errbuf)) != 0);
	/* A failed load keeps the previous keys. */
	TEST_ASSERT(tk_verifier_load_jwks(v, jwks, strlen(jwks), errbuf, sizeof(errbuf)) == 0);
	TEST_ASSERT(tk_verifier_load_jwks(v, "{}", 2, errbuf, sizeof(errbuf)) != 0);
	TEST_ASSERT(tk_verifier_key_count(v) == K_COUNT);
	tk_verifier_free(v);
}

/*
 * Issue 10, finding 10: small-order Ed25519 public keys (and non-canonical
 * encodings) are refused at load, as EC points off the curve are. The test
 * list is written out independently of verify.c's: the 8 points of the
 * torsion subgroup of edwards25519 (encoding = y little-endian, bit 255 =
 * sign of x), their x-sign-flipped forms where x = 0, and y >= p.
 */
static void test_jwks_small_order_ed25519(void)
{
	static const char *const hex[] = {
		/* order 1: (0, 1) */
		"0100000000000000000000000000000000000000000000000000000000000000",
		/* order 2: (0, -1) */
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		/* order 4: (+-sqrt(-1), 0) */
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0000000000000000000000000000000000000000000000000000000000000080",
		/* order 8 */
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
		/* x = 0 with the sign bit set ("-0"): orders 1 and 2 again */
		"0100000000000000000000000000000000000000000000000000000000000080",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
		/* y >= p: p (= 0, order 4), p + 1 (= 1, order 1), p + 5, 2^255 - 1 */
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"f2ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	};
	for (size_t i = 0; i < sizeof(hex) / sizeof(hex[0]); i++) {
		unsigned char raw[32];
		for (size_t j = 0; j < 32; j++) {
			unsigned v;
			TEST_ASSERT(sscanf(hex[i] + 2 * j, "%2x", &v) == 1);
			raw[j] = (unsigned char)v;
		}
		char *x = b64(raw, sizeof(raw));
		json_t *k = published(K_ED);
		json_object_set_new(k, "x", json_string(x));
		expect_refused_set(json_pack("[o]", k), "Ed25519", __LINE__ * 100 + (int)i);
		/* Alone or beside good keys: the whole set is refused. */
		k = published(K_ED);
		json_object_set_new(k, "x", json_string(x));
		expect_refused_set(json_pack("[o, o]", published(K_ES_A), k), "small-order", __LINE__ * 100 + (int)i);
		free(x);
	}
	/* The real key still loads. */
	TEST_ASSERT(load_set(json_pack("[o]", published(K_ED)), NULL) == 0);
}

static void test_jwks_skips_and_implied_alg(void)
{
	tk_verifier *v = NULL;
	json_t *a = published(K_ES_A), *b = published(K_ES_B), *ed = published(K_ED);
	json_t *enc = published(K_RSA), *p384 = jwk_of_file(extra_paths[0], "p384");

	/* No alg: implied by kty/crv. use enc, key_ops without verify, other
	 * algorithms and unsupported curves are skipped. */
	json_object_del(a, "alg");
	json_object_del(a, "use");
	json_object_set_new(b, "key_ops", json_pack("[s]", "encrypt"));
	json_object_set_new(ed, "key_ops", json_pack("[s, s]", "sign", "verify"));
	json_object_set_new(enc, "use", json_string("enc"));
	TEST_ASSERT(load_set(json_pack("[o, o, o, o, o, {s:s, s:s, s:s}]", a, b, ed, enc, p384,
	                               "kty", "RSA", "alg", "PS256", "kid", "pss"), &v) == 0);
	TEST_ASSERT(tk_verifier_key_count(v) == 2);
	EXPECT_V(v, mint_std(K_ES_A), TK_VERIFY_OK);
	EXPECT_V(v, mint_std(K_ED), TK_VERIFY_OK);
	EXPECT_V(v, mint_std(K_ES_B), TK_VERIFY_KID_UNKNOWN);
	EXPECT_V(v, mint_std(K_RSA), TK_VERIFY_KID_UNKNOWN);
	tk_verifier_free(v);

	/* An RSA modulus with a leading zero octet is accepted. */
	json_t *r = published(K_RSA);
	{
		const char *n = json_string_value(json_object_get(r, "n"));
		unsigned char raw[600];
		long len = tk_b64url_decode(n, strlen(n), raw + 1);
		raw[0] = 0;
		char *n2 = b64(raw, (size_t)len + 1);
		json_object_set_new(r, "n", json_string(n2));
		free(n2);
	}
	TEST_ASSERT(load_set(json_pack("[o]", r), &v) == 0);
	EXPECT_V(v, mint_std(K_RSA), TK_VERIFY_OK);
	tk_verifier_free(v);
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                  */

struct thr {
	char *good;
	char *bad;
	int fails;
};

static void *thread_main(void *arg)
{
	struct thr *t = arg;
	for (int i = 0; i < 200; i++) {
		tk_claims c;
		char err[256];
		if (tk_verify_at(ver, t->good, strlen(t->good), NOW, &c, err, sizeof(err)) != 0 ||
		    strcmp(c.iss, ISS) != 0)
			t->fails++;
		tk_claims_release(&c);
		if (tk_verify_at(ver, t->bad, strlen(t->bad), NOW, NULL, err, sizeof(err)) !=
		    TK_VERIFY_SIGNATURE)
			t->fails++;
	}
	return NULL;
}

static void test_threads(void)
{
	struct thr t[4];
	pthread_t th[4];
	int kk[4] = { K_ES_A, K_ES_B, K_ED, K_RSA };

	for (int i = 0; i < 4; i++) {
		t[i].good = mint_std(kk[i]);
		t[i].bad = forge(std_header(kk[i]), std_claims(), kk[(i + 1) % 2]);
		if (kk[i] == K_ED || kk[i] == K_RSA) {
			free(t[i].bad);
			/* signature of the right size made by the wrong key of that alg is
			 * impossible here (one key each): flip a signature byte instead. */
			t[i].bad = strdup(t[i].good);
			size_t n = strlen(t[i].bad) - 5;
			t[i].bad[n] = t[i].bad[n] == 'A' ? 'B' : 'A';
		}
		t[i].fails = 0;
	}
	for (int i = 0; i < 4; i++)
		TEST_ASSERT(pthread_create(&th[i], NULL, thread_main, &t[i]) == 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		TEST_ASSERT(t[i].fails == 0);
		free(t[i].good);
		free(t[i].bad);
	}
}

/* ------------------------------------------------------------------------ */
/* Benchmark (printed, never asserted)                                      */

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Best of RUNS runs of N verifications on this thread. Two rates: per
 * second of wall time, and per second of this thread's CPU time (what one
 * core does; the wall figure drops when other processes share the core).
 */
static void bench_run(int (*one)(void *), void *arg, double *wall, double *cpu, int *bad)
{
	enum { N = 2000, RUNS = 3 };
	*wall = *cpu = 0;
	for (int r = 0; r < RUNS; r++) {
		double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
		for (int i = 0; i < N; i++)
			if (one(arg) != 0)
				(*bad)++;
		double w = N / (clock_s(CLOCK_MONOTONIC) - w0);
		double c = N / (clock_s(CLOCK_THREAD_CPUTIME_ID) - c0);
		if (w > *wall)
			*wall = w;
		if (c > *cpu)
			*cpu = c;
	}
}

static int one_tk_verify(void *arg)
{
	const char *t = arg;
	tk_claims c;
	int rc = tk_verify_at(ver, t, strlen(t), NOW, &c, NULL, 0);
	tk_claims_release(&c);
	return rc;
}

static void bench_alg(int k, const char *label)
{
	char *t = mint_std(k);
	double wall, cpu;
	int bad = 0;

	bench_run(one_tk_verify, t, &wall, &cpu, &bad);
	TEST_ASSERT(bad == 0);
	fprintf(stderr, "   tk_verify %-5s: %6.0f verifications/s per core (CPU time), %6.0f/s wall "
	        "(one thread, best of 3 x 2000, token %zu bytes)\n", label, cpu, wall, strlen(t));
	free(t);
}

/* The bare OpenSSL ECDSA P-256 verification of a digest: the floor. */
struct raw_es {
	EVP_PKEY_CTX *ctx;
	unsigned char der[80];
	size_t dl;
	unsigned char md[32];
};

static int one_raw_es256(void *arg)
{
	struct raw_es *r = arg;
	return EVP_PKEY_verify(r->ctx, r->der, r->dl, r->md, 32) == 1 ? 0 : 1;
}

static void bench_raw_es256(void)
{
	struct raw_es r;
	double wall, cpu;
	int bad = 0;
	EVP_PKEY_CTX *s = EVP_PKEY_CTX_new_from_pkey(NULL, keys[K_ES_A].pk, NULL);

	memset(r.md, 7, sizeof(r.md));
	r.dl = sizeof(r.der);
	TEST_ASSERT(EVP_PKEY_sign_init(s) == 1);
	TEST_ASSERT(EVP_PKEY_sign(s, r.der, &r.dl, r.md, 32) == 1);
	r.ctx = EVP_PKEY_CTX_new_from_pkey(NULL, keys[K_ES_A].pk, NULL);
	TEST_ASSERT(EVP_PKEY_verify_init(r.ctx) == 1);
	bench_run(one_raw_es256, &r, &wall, &cpu, &bad);
	TEST_ASSERT(bad == 0);
	fprintf(stderr, "   OpenSSL ECDSA P-256 verify alone: %6.0f/s per core (CPU time), "
	        "%6.0f/s wall (the floor tk_verify builds on)\n", cpu, wall);
	EVP_PKEY_CTX_free(r.ctx);
	EVP_PKEY_CTX_free(s);
}

/* For comparison only: libjwt 3's checker on the same ES256 token. */
struct lj {
	jwt_checker_t *ch;
	const char *tok;
};

static int one_libjwt(void *arg)
{
	struct lj *l = arg;
	return jwt_checker_verify(l->ch, l->tok);
}

static void bench_libjwt_checker(void)
{
	char *t = mint_std(K_ES_A);
	jwk_set_t *set = jwks_create(jwks);
	const jwk_item_t *item = NULL;
	struct lj l = { jwt_checker_new(), t };
	double wall, cpu;
	int bad = 0;

	for (size_t i = 0; set != NULL && (item = jwks_item_get(set, i)) != NULL; i++)
		if (strcmp(jwks_item_kid(item), keys[K_ES_A].kid) == 0)
			break;
	if (l.ch == NULL || item == NULL || jwt_checker_setkey(l.ch, JWT_ALG_ES256, item) != 0) {
		fprintf(stderr, "   libjwt checker: could not be set up (informational)\n");
		goto out;
	}
	bench_run(one_libjwt, &l, &wall, &cpu, &bad);
	if (bad)
		fprintf(stderr, "   libjwt checker refused the token (%s) (informational)\n",
		        jwt_checker_error_msg(l.ch));
	else
		fprintf(stderr, "   libjwt 3 jwt_checker_verify ES256: %6.0f/s per core (CPU time), "
		        "%6.0f/s wall (for comparison)\n", cpu, wall);
out:
	jwt_checker_free(l.ch);
	jwks_free(set);
	free(t);
}

static void bench_verify(void)
{
	bench_alg(K_ES_A, "ES256");
	bench_raw_es256();
	bench_alg(K_ED, "EdDSA");
	bench_alg(K_RSA, "RS256");
	bench_libjwt_checker();
}

/* ------------------------------------------------------------------------ */

static int setup(void)
{
	for (int k = 0; k < K_COUNT; k++) {
		snprintf(keys[k].path, sizeof(keys[k].path), "%s/%s", dir, keys[k].file);
		if (gen_key(keys[k].path, keys[k].genargs) != 0) {
			fprintf(stderr, "openssl genpkey failed for %s\n", keys[k].file);
			return -1;
		}
		keys[k].pk = read_pem(keys[k].path);
		if (keys[k].pk == NULL)
			return -1;
	}
	/* Keys we must refuse or skip: P-384 and RSA-1024. */
	snprintf(extra_paths[nextra++], sizeof(extra_paths[0]), "%s/p384.pem", dir);
	snprintf(extra_paths[nextra++], sizeof(extra_paths[0]), "%s/rsa1024.pem", dir);
	if (gen_key(extra_paths[0], "-algorithm EC -pkeyopt ec_paramgen_curve:P-384") != 0 ||
	    gen_key(extra_paths[1], "-algorithm RSA -pkeyopt rsa_keygen_bits:1024") != 0)
		return -1;

	signer = tk_signer_new();
	for (int k = 0; k < K_COUNT; k++) {
		if (tk_signer_add_file(signer, keys[k].path, errbuf, sizeof(errbuf)) != 0) {
			fprintf(stderr, "signer: %s\n", errbuf);
			return -1;
		}
		tk_signer_key_at(signer, (size_t)k, &keys[k].kid, NULL);
	}
	minter = tk_minter_new(signer, errbuf, sizeof(errbuf));
	jwks = tk_signer_jwks_json(signer);
	if (minter == NULL || jwks == NULL)
		return -1;
	ver = tk_verifier_new();
	if (ver == NULL || tk_verifier_load_jwks(ver, jwks, strlen(jwks), errbuf, sizeof(errbuf)) != 0 ||
	    tk_verifier_set_issuer(ver, ISS, errbuf, sizeof(errbuf)) != 0) {
		fprintf(stderr, "verifier: %s\n", errbuf);
		return -1;
	}
	return 0;
}

static void teardown(void)
{
	tk_verifier_free(ver);
	tk_minter_free(minter);
	tk_signer_free(signer);
	free(jwks);
	for (int k = 0; k < K_COUNT; k++) {
		EVP_PKEY_free(keys[k].pk);
		if (keys[k].path[0])
			unlink(keys[k].path);
	}
	for (int i = 0; i < nextra; i++)
		unlink(extra_paths[i]);
	if (rmdir(dir) != 0)
		fprintf(stderr, "warning: could not remove %s: %s\n", dir, strerror(errno));
}

int main(void)
{
	json_object_seed(0);
	NOW = (int64_t)time(NULL);
	snprintf(dir, sizeof(dir), "/tmp/tk-verify-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	if (setup() != 0) {
		fprintf(stderr, "setup failed\n");
		teardown();
		return 1;
	}

	TEST_RUN(test_valid_es256);
	TEST_RUN(test_valid_eddsa);
	TEST_RUN(test_valid_rs256);
	TEST_RUN(test_valid_second_es256_key);
	TEST_RUN(test_aud_array_and_no_scope);
	TEST_RUN(test_alg_none);
	TEST_RUN(test_alg_missing_or_odd);
	TEST_RUN(test_alg_not_kids_alg);
	TEST_RUN(test_hs256_with_public_key_pem);
	TEST_RUN(test_hs256_with_public_key_jwk);
	TEST_RUN(test_unknown_kid);
	TEST_RUN(test_kid_missing_or_not_string);
	TEST_RUN(test_kid_other_keys_signature);
	TEST_RUN(test_tampered_payload);
	TEST_RUN(test_typ);
	TEST_RUN(test_forbidden_header_params);
	TEST_RUN(test_crit);
	TEST_RUN(test_missing_claims);
	TEST_RUN(test_claim_types);
	TEST_RUN(test_expired);
	TEST_RUN(test_nbf_in_future);
	TEST_RUN(test_iat_in_future);
	TEST_RUN(test_wrong_issuer);
	TEST_RUN(test_wrong_audience);
	TEST_RUN(test_required_scopes);
	TEST_RUN(test_token_over_8k);
	TEST_RUN(test_noncanonical_base64url);
	TEST_RUN(test_segments);
	TEST_RUN(test_es256_signature_lengths);
	TEST_RUN(test_es256_r_or_s_zero);
	TEST_RUN(test_es256_r_ge_n);
	TEST_RUN(test_es256_high_s_accepted);
	TEST_RUN(test_rs256_and_eddsa_signature_sizes);
	TEST_RUN(test_duplicate_header_members);
	TEST_RUN(test_duplicate_payload_members);
	TEST_RUN(test_json_depth);
	TEST_RUN(test_not_objects);
	TEST_RUN(test_algorithms_allowlist);
	TEST_RUN(test_setters_and_not_ready);
	TEST_RUN(test_strerror);
	TEST_RUN(test_jwks_refusals);
	TEST_RUN(test_jwks_skips_and_implied_alg);
	TEST_RUN(test_jwks_small_order_ed25519);
	TEST_RUN(test_threads);
	TEST_RUN(bench_verify);

	teardown();
	TEST_DONE();
}
