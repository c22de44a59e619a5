/*
 * test_signer.c - signing keys, JWKS and access-token minting.
 *
 * All key material is generated at run time into a private mkdtemp
 * directory and removed at the end; nothing is committed.
 */
#include "unit.h"

#include "tokend/crypto.h"
#include "tokend/signer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

static char dir[64];
static char paths[128][128];
static int npaths;
static char errbuf[512];

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static const char *tmp_path(const char *name)
{
	char *p = paths[npaths++];
	snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
	return p;
}

static void write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	TEST_ASSERT(fd >= 0);
	if (fd < 0)
		return;
	TEST_ASSERT(write(fd, data, len) == (ssize_t)len);
	close(fd);
	TEST_ASSERT(chmod(path, mode) == 0);
}

enum pem_form { PKCS8, TRADITIONAL, PKCS8_ENCRYPTED, TRAD_ENCRYPTED, PUBLIC };

static const char *write_pem(const char *name, EVP_PKEY *pk, enum pem_form form, mode_t mode)
{
	const char *path = tmp_path(name);
	static const unsigned char pass[] = "correct horse";
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;
	int ok = 0;

	switch (form) {
	case PKCS8:
		ok = PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL);
		break;
	case TRADITIONAL:
		ok = PEM_write_bio_PrivateKey_traditional(bio, pk, NULL, NULL, 0, NULL, NULL);
		break;
	case PKCS8_ENCRYPTED:
		ok = PEM_write_bio_PrivateKey(bio, pk, EVP_aes_256_cbc(), pass, 13, NULL, NULL);
		break;
	case TRAD_ENCRYPTED:
		ok = PEM_write_bio_PrivateKey_traditional(bio, pk, EVP_aes_256_cbc(), pass, 13, NULL,
		                                          NULL);
		break;
	case PUBLIC:
		ok = PEM_write_bio_PUBKEY(bio, pk);
		break;
	}
	TEST_ASSERT(ok == 1);
	len = BIO_get_mem_data(bio, &data);
	write_file(path, data, (size_t)len, mode);
	BIO_free(bio);
	return path;
}

static EVP_PKEY *gen_ec(const char *curve)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
	TEST_ASSERT(pk != NULL);
	return pk;
}

static EVP_PKEY *gen_ed25519(void)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	TEST_ASSERT(pk != NULL);
	return pk;
}

static EVP_PKEY *gen_rsa(size_t bits)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);
	TEST_ASSERT(pk != NULL);
	return pk;
}

/* base64url written independently of the library: EVP_EncodeBlock + mapping. */
static void b64u(const unsigned char *in, size_t n, char *out)
{
	int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (int i = 0; i < len; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
}

/* base64url of a BIGNUM parameter: `pad` bytes, or minimal when pad == 0. */
static void bn_param_b64u(EVP_PKEY *pk, const char *name, int pad, char *out)
{
	BIGNUM *bn = NULL;
	unsigned char buf[1100];
	int n;

	out[0] = '\0';
	TEST_ASSERT(EVP_PKEY_get_bn_param(pk, name, &bn) == 1);
	if (bn == NULL)
		return;
	n = pad > 0 ? pad : BN_num_bytes(bn);
	TEST_ASSERT(BN_bn2binpad(bn, buf, n) == n);
	b64u(buf, (size_t)n, out);
	BN_clear_free(bn);
}

static void sha256_b64u(const char *s, char out[64])
{
	unsigned char md[32];
	unsigned int len = 0;
	TEST_ASSERT(EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL) == 1);
	b64u(md, len, out);
}

/* Thumbprints computed here, not by the library. */
static void ec_thumbprint(EVP_PKEY *pk, char out[64])
{
	char x[64], y[64], canon[256];
	bn_param_b64u(pk, OSSL_PKEY_PARAM_EC_PUB_X, 32, x);
	bn_param_b64u(pk, OSSL_PKEY_PARAM_EC_PUB_Y, 32, y);
	snprintf(canon, sizeof(canon), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
	         x, y);
	sha256_b64u(canon, out);
}

static void ed_thumbprint(EVP_PKEY *pk, char out[64])
{
	unsigned char raw[32];
	size_t len = sizeof(raw);
	char x[64], canon[256];
	TEST_ASSERT(EVP_PKEY_get_raw_public_key(pk, raw, &len) == 1 && len == 32);
	b64u(raw, len, x);
	snprintf(canon, sizeof(canon), "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
	sha256_b64u(canon, out);
}

static void rsa_thumbprint(EVP_PKEY *pk, char out[64])
{
	char n[1500], e[16], canon[1600];
	bn_param_b64u(pk, OSSL_PKEY_PARAM_RSA_N, 0, n);
	bn_param_b64u(pk, OSSL_PKEY_PARAM_RSA_E, 0, e);
	snprintf(canon, sizeof(canon), "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e, n);
	sha256_b64u(canon, out);
}

/* A private EC JWK of `pk`; `extra` is appended inside the object. */
static void ec_jwk(EVP_PKEY *pk, const char *extra, char *out, size_t outlen)
{
	char x[64], y[64], d[64];
	bn_param_b64u(pk, OSSL_PKEY_PARAM_EC_PUB_X, 32, x);
	bn_param_b64u(pk, OSSL_PKEY_PARAM_EC_PUB_Y, 32, y);
	bn_param_b64u(pk, OSSL_PKEY_PARAM_PRIV_KEY, 32, d);
	snprintf(out, outlen, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"d\":\"%s\"%s}",
	         x, y, d, extra);
}

static void ed_jwk(EVP_PKEY *pk, const char *extra, char *out, size_t outlen)
{
	unsigned char raw[32];
	size_t len = sizeof(raw);
	char x[64], d[64];
	TEST_ASSERT(EVP_PKEY_get_raw_public_key(pk, raw, &len) == 1);
	b64u(raw, len, x);
	len = sizeof(raw);
	TEST_ASSERT(EVP_PKEY_get_raw_private_key(pk, raw, &len) == 1);
	b64u(raw, len, d);
	snprintf(out, outlen, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"d\":\"%s\"%s}", x,
	         d, extra);
}

static void rsa_jwk(EVP_PKEY *pk, const char *extra, char *out, size_t outlen)
{
	static const char *const names[8] = { "n", "e", "d", "p", "q", "dp", "dq", "qi" };
	static const char *const params[8] = {
		OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
		OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
		OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
		OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
	};
	size_t o = (size_t)snprintf(out, outlen, "{\"kty\":\"RSA\"");
	char v[1500];
	for (int i = 0; i < 8; i++) {
		bn_param_b64u(pk, params[i], 0, v);
		o += (size_t)snprintf(out + o, outlen - o, ",\"%s\":\"%s\"", names[i], v);
	}
	snprintf(out + o, outlen - o, "%s}", extra);
}

static const char *write_text(const char *name, const char *text, mode_t mode)
{
	const char *path = tmp_path(name);
	write_file(path, text, strlen(text), mode);
	return path;
}

/* Add `path` to a fresh signer; returns it (or NULL) and leaves the error in errbuf. */
static tk_signer *load_one(const char *path)
{
	tk_signer *s = tk_signer_new();
	TEST_ASSERT(s != NULL);
	errbuf[0] = '\0';
	if (tk_signer_add_file(s, path, errbuf, sizeof(errbuf)) != 0) {
		tk_signer_free(s);
		return NULL;
	}
	return s;
}

/* Expect `path` to be refused with an error containing `needle`. */
static void expect_refused(const char *path, const char *needle)
{
	tk_signer *s = load_one(path);
	TEST_ASSERT(s == NULL);
	tk_signer_free(s);
	if (strstr(errbuf, needle) == NULL) {
		fprintf(stderr, "   error for %s was: %s (expected \"%s\")\n", path, errbuf, needle);
		TEST_ASSERT(strstr(errbuf, needle) != NULL);
	}
	TEST_ASSERT(strncmp(errbuf, path, strlen(path)) == 0);   /* prefixed with the path */
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Decode one base64url segment into a malloc'd, NUL-terminated buffer. */
static unsigned char *seg_decode(const char *seg, size_t len, long *outlen)
{
	unsigned char *buf = malloc(len / 4 * 3 + 4);
	long n = tk_b64url_decode(seg, len, buf);
	*outlen = n;
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

struct parsed {
	json_t *header;
	json_t *claims;
	long siglen;
	int segments;
};

static int b64url_chars(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return n > 0;
}

static int parse_token(const char *tok, struct parsed *p)
{
	const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	unsigned char *h, *c, *sig;
	long hl, cl;

	memset(p, 0, sizeof(*p));
	if (!d1 || !d2 || strchr(d2 + 1, '.'))
		return -1;
	p->segments = 3;
	if (!b64url_chars(tok, (size_t)(d1 - tok)) || !b64url_chars(d1 + 1, (size_t)(d2 - d1 - 1)) ||
	    !b64url_chars(d2 + 1, strlen(d2 + 1)))
		return -1;
	h = seg_decode(tok, (size_t)(d1 - tok), &hl);
	c = seg_decode(d1 + 1, (size_t)(d2 - d1 - 1), &cl);
	sig = seg_decode(d2 + 1, strlen(d2 + 1), &p->siglen);
	if (h)
		p->header = json_loadb((const char *)h, (size_t)hl, JSON_REJECT_DUPLICATES, NULL);
	if (c)
		p->claims = json_loadb((const char *)c, (size_t)cl, JSON_REJECT_DUPLICATES, NULL);
	free(h);
	free(c);
	free(sig);
	return p->header && p->claims && sig ? 0 : -1;
}

static void parsed_free(struct parsed *p)
{
	json_decref(p->header);
	json_decref(p->claims);
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* Verify `tok` with libjwt, using only the signer's public JWKS. */
static int verify_with_jwks(const tk_signer *s, const char *tok, const char *kid, const char *alg)
{
	char *jwks = tk_signer_jwks_json(s);
	jwk_set_t *set = jwks ? jwks_create(jwks) : NULL;
	jwk_item_t *item = set ? jwks_find_bykid(set, kid) : NULL;
	jwt_checker_t *c = jwt_checker_new();
	int rc = -1;

	if (item && !jwks_item_is_private(item) && c &&
	    jwt_checker_setkey(c, jwt_str_alg(alg), item) == 0)
		rc = jwt_checker_verify(c, tok);
	jwt_checker_free(c);
	jwks_free(set);
	free(jwks);
	return rc;
}

static tk_token_claims base_claims(const char *const *aud, size_t naud)
{
	tk_token_claims c;
	memset(&c, 0, sizeof(c));
	c.iss = "https://auth.example.com";
	c.sub = "tk_sub123";
	c.aud = aud;
	c.aud_count = naud;
	c.client_id = "tk_client456";
	c.scope = "read write";
	c.acct = "acct_789";
	c.iat = (int64_t)time(NULL);
	c.exp = c.iat + 300;
	return c;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */

static const char RFC7638_JWK[] =
	"{\"kty\":\"RSA\","
	"\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6"
	"tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0"
	"_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vM"
	"QFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw\","
	"\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\"}";

static void test_thumbprint_rfc7638(void)
{
	char tp[TK_THUMBPRINT_LEN + 1];
	/* RFC 7638 §3.1 */
	TEST_ASSERT(tk_jwk_thumbprint(RFC7638_JWK, strlen(RFC7638_JWK), tp, errbuf,
	                              sizeof(errbuf)) == 0);
	TEST_ASSERT_STR(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	TEST_ASSERT(strlen(tp) == TK_THUMBPRINT_LEN);

	/* Whitespace, member order and extra members do not matter. */
	char *spaced = malloc(sizeof(RFC7638_JWK) + 64);
	const char *n = strstr(RFC7638_JWK, "\"n\":");
	const char *n_end = strstr(n, "\",") + 1;
	int len = sprintf(spaced, " {\n \"use\" : \"sig\", \"e\": \"AQAB\" ,\n %.*s, \"kty\" : \"RSA\" }\n",
	                  (int)(n_end - n), n);
	TEST_ASSERT(tk_jwk_thumbprint(spaced, (size_t)len, tp, NULL, 0) == 0);
	TEST_ASSERT_STR(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	free(spaced);

	/* Malformed inputs. */
	static const char *const bad[] = {
		"", "[]", "{\"kty\":\"RSA\",\"e\":\"AQAB\"}", "{\"kty\":\"oct\",\"k\":\"AAAA\"}",
		"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\"}",
		"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA+A\",\"y\":\"AAAA\"}",
		"{\"kty\":\"OKP\",\"x\":\"AAAA\"}", "{\"kty\":1}",
		"{\"kty\":\"RSA\",\"e\":\"AQAB\",\"e\":\"AQAB\",\"n\":\"AAAA\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errbuf[0] = '\0';
		TEST_ASSERT(tk_jwk_thumbprint(bad[i], strlen(bad[i]), tp, errbuf, sizeof(errbuf)) == -1);
		TEST_ASSERT(errbuf[0] != '\0');
		TEST_ASSERT(tp[0] == '\0');
	}
	/* Explicit length: bytes after len are ignored. */
	char buf[sizeof(RFC7638_JWK) + 8];
	memcpy(buf, RFC7638_JWK, sizeof(RFC7638_JWK) - 1);
	memcpy(buf + sizeof(RFC7638_JWK) - 1, "garbage", 8);
	TEST_ASSERT(tk_jwk_thumbprint(buf, sizeof(RFC7638_JWK) - 1, tp, NULL, 0) == 0);
	TEST_ASSERT_STR(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

/* Load one PEM of each supported type; kid = independent thumbprint. */
static void test_pem_keys(void)
{
	struct {
		const char *name, *alg;
		EVP_PKEY *pk;
		enum pem_form form;
		void (*tp)(EVP_PKEY *, char *);
	} k[] = {
		{ "es256.pem", "ES256", gen_ec("P-256"), PKCS8, ec_thumbprint },
		{ "es256-sec1.pem", "ES256", gen_ec("P-256"), TRADITIONAL, ec_thumbprint },
		{ "ed25519.pem", "EdDSA", gen_ed25519(), PKCS8, ed_thumbprint },
		{ "rs256.pem", "RS256", gen_rsa(2048), PKCS8, rsa_thumbprint },
		{ "rs256-pkcs1.pem", "RS256", gen_rsa(3072), TRADITIONAL, rsa_thumbprint },
	};
	for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
		char want[64];
		const char *path = write_pem(k[i].name, k[i].pk, k[i].form, 0600);
		tk_signer *s = load_one(path);
		if (s == NULL)
			fprintf(stderr, "   %s: %s\n", k[i].name, errbuf);
		TEST_ASSERT(s != NULL);
		k[i].tp(k[i].pk, want);
		TEST_ASSERT_STR(tk_signer_active_kid(s), want);
		TEST_ASSERT_STR(tk_signer_active_alg(s), k[i].alg);
		TEST_ASSERT(tk_signer_count(s) == 1);
		/* The library's thumbprint of the published JWK agrees. */
		char *jwks = tk_signer_jwks_json(s);
		json_t *o = jwks ? json_loads(jwks, 0, NULL) : NULL;
		json_t *key = json_array_get(json_object_get(o, "keys"), 0);
		char *one = key ? json_dumps(key, JSON_COMPACT) : NULL;
		char tp[TK_THUMBPRINT_LEN + 1];
		TEST_ASSERT(one && tk_jwk_thumbprint(one, strlen(one), tp, NULL, 0) == 0);
		TEST_ASSERT_STR(tp, want);
		free(one);
		json_decref(o);
		free(jwks);
		tk_signer_free(s);
		EVP_PKEY_free(k[i].pk);
	}
}

static void test_jwk_files(void)
{
	char text[8192], want[64];
	tk_signer *s;

	/* EC JWK with kid and alg. */
	EVP_PKEY *ec = gen_ec("P-256");
	ec_jwk(ec, ",\"kid\":\"ec-2026-01\",\"alg\":\"ES256\",\"use\":\"sig\"", text, sizeof(text));
	s = load_one(write_text("ec.jwk", text, 0600));
	TEST_ASSERT(s != NULL);
	TEST_ASSERT_STR(tk_signer_active_kid(s), "ec-2026-01");
	TEST_ASSERT_STR(tk_signer_active_alg(s), "ES256");
	tk_signer_free(s);

	/* EC JWK without kid: thumbprint; leading whitespace accepted. */
	ec_jwk(ec, "", text + 3, sizeof(text) - 3);
	memcpy(text, " \n\t", 3);
	s = load_one(write_text("ec-nokid.jwk", text, 0400));
	TEST_ASSERT(s != NULL);
	ec_thumbprint(ec, want);
	TEST_ASSERT_STR(tk_signer_active_kid(s), want);
	tk_signer_free(s);

	/* Wrong alg for the key. */
	ec_jwk(ec, ",\"alg\":\"RS256\"", text, sizeof(text));
	expect_refused(write_text("ec-badalg.jwk", text, 0600), "does not match the key");
	ec_jwk(ec, ",\"alg\":\"ES384\"", text, sizeof(text));
	expect_refused(write_text("ec-es384.jwk", text, 0600), "does not match the key");
	ec_jwk(ec, ",\"alg\":\"none\"", text, sizeof(text));
	expect_refused(write_text("ec-none.jwk", text, 0600), "does not match the key");
	ec_jwk(ec, ",\"use\":\"enc\"", text, sizeof(text));
	expect_refused(write_text("ec-enc.jwk", text, 0600), "\"use\" must be \"sig\"");
	ec_jwk(ec, ",\"kid\":\"a\\\"b\"", text, sizeof(text));
	expect_refused(write_text("ec-badkid.jwk", text, 0600), "kid");
	ec_jwk(ec, ",\"kid\":\"\"", text, sizeof(text));
	expect_refused(write_text("ec-emptykid.jwk", text, 0600), "kid");

	/* Public part of another key: refused by the pairwise check. */
	{
		EVP_PKEY *other = gen_ec("P-256");
		char x[64], y[64], d[64];
		bn_param_b64u(other, OSSL_PKEY_PARAM_EC_PUB_X, 32, x);
		bn_param_b64u(other, OSSL_PKEY_PARAM_EC_PUB_Y, 32, y);
		bn_param_b64u(ec, OSSL_PKEY_PARAM_PRIV_KEY, 32, d);
		snprintf(text, sizeof(text),
		         "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"d\":\"%s\"}", x, y,
		         d);
		expect_refused(write_text("ec-mismatch.jwk", text, 0600), "");
		TEST_ASSERT(strstr(errbuf, "match") != NULL || strstr(errbuf, "valid") != NULL);
		/* Public-only JWK. */
		snprintf(text, sizeof(text), "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}",
		         x, y);
		expect_refused(write_text("ec-public.jwk", text, 0600), "no private key");
		/* A JWK Set. */
		snprintf(text, sizeof(text), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\","
		         "\"y\":\"%s\",\"d\":\"%s\"}]}", x, y, d);
		expect_refused(write_text("set.jwk", text, 0600), "JWK Set");
		/* Short coordinate (not padded to 32 bytes). */
		snprintf(text, sizeof(text), "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%.42s\",\"y\":\"%s\","
		         "\"d\":\"%s\"}", x, y, d);
		expect_refused(write_text("ec-short.jwk", text, 0600), "\"x\"");
		EVP_PKEY_free(other);
	}
	/* P-384 JWK, oct JWK, duplicate members, bad JSON. */
	expect_refused(write_text("p384.jwk",
	                          "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\",\"d\":\"AA\"}",
	                          0600), "P-384");
	expect_refused(write_text("oct.jwk", "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\",\"d\":\"x\"}", 0600),
	               "symmetric");
	ec_jwk(ec, ",\"d\":\"AAAA\"", text, sizeof(text));
	expect_refused(write_text("ec-dup.jwk", text, 0600), "invalid JSON");
	expect_refused(write_text("junk.jwk", "{\"kty\":", 0600), "invalid JSON");
	EVP_PKEY_free(ec);

	/* Ed25519 JWK without kid; mismatched x refused. */
	EVP_PKEY *ed = gen_ed25519();
	ed_jwk(ed, ",\"alg\":\"EdDSA\"", text, sizeof(text));
	s = load_one(write_text("ed.jwk", text, 0600));
	TEST_ASSERT(s != NULL);
	ed_thumbprint(ed, want);
	TEST_ASSERT_STR(tk_signer_active_kid(s), want);
	TEST_ASSERT_STR(tk_signer_active_alg(s), "EdDSA");
	tk_signer_free(s);
	{
		EVP_PKEY *other = gen_ed25519();
		unsigned char raw[32];
		size_t len = sizeof(raw);
		char x[64], d[64];
		EVP_PKEY_get_raw_public_key(other, raw, &len);
		b64u(raw, 32, x);
		len = sizeof(raw);
		EVP_PKEY_get_raw_private_key(ed, raw, &len);
		b64u(raw, 32, d);
		snprintf(text, sizeof(text), "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"d\":\"%s\"}",
		         x, d);
		expect_refused(write_text("ed-mismatch.jwk", text, 0600), "does not match");
		EVP_PKEY_free(other);
	}
	EVP_PKEY_free(ed);

	/* RSA JWK. */
	EVP_PKEY *rsa = gen_rsa(2048);
	rsa_jwk(rsa, ",\"kid\":\"rsa-1\",\"alg\":\"RS256\"", text, sizeof(text));
	s = load_one(write_text("rsa.jwk", text, 0600));
	TEST_ASSERT(s != NULL);
	TEST_ASSERT_STR(tk_signer_active_kid(s), "rsa-1");
	TEST_ASSERT_STR(tk_signer_active_alg(s), "RS256");
	tk_signer_free(s);
	/* RSA JWK whose modulus belongs to another key. */
	{
		EVP_PKEY *other = gen_rsa(2048);
		char n_other[1500], *n_at, *n_end;
		bn_param_b64u(other, OSSL_PKEY_PARAM_RSA_N, 0, n_other);
		rsa_jwk(rsa, "", text, sizeof(text));
		n_at = strstr(text, "\"n\":\"") + 5;
		n_end = strchr(n_at, '"');
		if (strlen(n_other) == (size_t)(n_end - n_at)) {
			memcpy(n_at, n_other, strlen(n_other));
			expect_refused(write_text("rsa-mismatch.jwk", text, 0600), "validation");
		}
		EVP_PKEY_free(other);
	}
	rsa_jwk(rsa, ",\"alg\":\"PS256\"", text, sizeof(text));
	expect_refused(write_text("rsa-ps.jwk", text, 0600), "does not match the key");
	rsa_jwk(rsa, ",\"alg\":\"HS256\"", text, sizeof(text));
	expect_refused(write_text("rsa-hs.jwk", text, 0600), "does not match the key");
	EVP_PKEY_free(rsa);
}

/* Child process: refuse an encrypted key without any terminal prompt. */
static int refuse_encrypted_in_child(const char *path)
{
	pid_t pid = fork();
	int status = 0;

	if (pid == 0) {
		char err[512] = "";
		int fd = open("/dev/null", O_RDONLY);
		setsid();                      /* no controlling terminal */
		if (fd >= 0)
			dup2(fd, 0);
		alarm(30);                     /* a prompt would hang: fail instead */
		tk_signer *s = tk_signer_new();
		int rc = tk_signer_add_file(s, path, err, sizeof(err));
		tk_signer_free(s);
		_exit(rc == -1 && strstr(err, "encrypted") != NULL ? 0 : 1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void test_refusals(void)
{
	char msg[512];
	EVP_PKEY *ec = gen_ec("P-256");

	/* Permissions. */
	const char *p644 = write_pem("open.pem", ec, PKCS8, 0644);
	expect_refused(p644, "readable by others");
	snprintf(msg, sizeof(msg), "%s: private key file is readable by others (mode 0644, owner uid %ld): "
	         "run chmod o-rwx on it (0600, 0400, or 0640/0440 owned by root or by tokend's user uid %ld "
	         "are accepted)", p644, (long)geteuid(), (long)geteuid());
	TEST_ASSERT_STR(errbuf, msg);
	expect_refused(write_pem("oread.pem", ec, PKCS8, 0604), "readable by others (mode 0604");
	expect_refused(write_pem("owrite.pem", ec, PKCS8, 0602), "accessible by others (mode 0602");
	expect_refused(write_pem("gwrite.pem", ec, PKCS8, 0620), "writable or executable by its group (mode 0620");
	expect_refused(write_pem("gwrite2.pem", ec, PKCS8, 0660), "run chmod g-wx on it");
	/* Group-readable, owned by this process's user: a Kubernetes secret volume with fsGroup. */
	{
		tk_signer *s = tk_signer_new();
		const char *p640 = write_pem("group.pem", ec, PKCS8, 0640);
		TEST_ASSERT(tk_signer_add_file(s, p640, errbuf, sizeof(errbuf)) == 0);
		tk_signer_free(s);
		s = tk_signer_new();
		TEST_ASSERT(tk_signer_add_file(s, write_pem("group440.pem", ec, PKCS8, 0440), errbuf,
		                               sizeof(errbuf)) == 0);
		tk_signer_free(s);
	}
	/* The owner rule alone (a file cannot be given away without privileges). */
	TEST_ASSERT(tk_secret_file_mode_ok(0100640, 0, "f", errbuf, sizeof(errbuf)) == 0);
	TEST_ASSERT(tk_secret_file_mode_ok(0100640, (long)geteuid(), "f", errbuf, sizeof(errbuf)) == 0);
	TEST_ASSERT(tk_secret_file_mode_ok(0100600, 4242, "f", errbuf, sizeof(errbuf)) == 0);
	if (geteuid() != 4242) {
		TEST_ASSERT(tk_secret_file_mode_ok(0100640, 4242, "f", errbuf, sizeof(errbuf)) == -1);
		snprintf(msg, sizeof(msg), "f is readable by its group but owned by uid 4242, neither root nor "
		         "tokend's user (uid %ld) (mode 0640): chown it to one of them, or chmod g-r it",
		         (long)geteuid());
		TEST_ASSERT_STR(errbuf, msg);
	}

	/* Missing, directory, empty, garbage, public key only. */
	expect_refused(tmp_path("missing.pem"), "cannot open");
	expect_refused(dir, "not a regular file");
	expect_refused(write_text("empty.pem", "", 0600), "empty");
	expect_refused(write_text("garbage.pem", "hello world\n", 0600), "neither a JWK");
	expect_refused(write_pem("public.pem", ec, PUBLIC, 0600), "no usable PEM private key");
	expect_refused(write_text("badpem.pem", "-----BEGIN " "PRIVATE KEY-----\nAAAA\n"
	                          "-----END PRIVATE KEY-----\n", 0600), "no usable PEM private key");

	/* Encrypted PEM (PKCS#8 and traditional): refused, no prompt. */
	const char *enc8 = write_pem("enc8.pem", ec, PKCS8_ENCRYPTED, 0600);
	const char *enct = write_pem("enctrad.pem", ec, TRAD_ENCRYPTED, 0600);
	TEST_ASSERT(refuse_encrypted_in_child(enc8) == 0);
	TEST_ASSERT(refuse_encrypted_in_child(enct) == 0);
	expect_refused(enc8, "encrypted");
	expect_refused(enct, "encrypted");

	/* Weak or unsupported keys. */
	EVP_PKEY *rsa1024 = gen_rsa(1024);
	expect_refused(write_pem("rsa1024.pem", rsa1024, PKCS8, 0600), "at least 2048");
	EVP_PKEY_free(rsa1024);
	EVP_PKEY *p384 = gen_ec("P-384");
	expect_refused(write_pem("p384.pem", p384, PKCS8, 0600), "not supported");
	TEST_ASSERT(strstr(errbuf, "secp384r1") != NULL);
	EVP_PKEY_free(p384);
	EVP_PKEY *k1 = gen_ec("secp256k1");
	expect_refused(write_pem("k1.pem", k1, PKCS8, 0600), "not supported");
	EVP_PKEY_free(k1);
	EVP_PKEY *ed448 = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
	expect_refused(write_pem("ed448.pem", ed448, PKCS8, 0600), "not supported");
	EVP_PKEY_free(ed448);
	EVP_PKEY *x25519 = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	expect_refused(write_pem("x25519.pem", x25519, PKCS8, 0600), "not supported");
	EVP_PKEY_free(x25519);

	/* Duplicate kid: the same key twice, and two JWKs sharing a kid. */
	const char *good = write_pem("good.pem", ec, PKCS8, 0600);
	tk_signer *s = tk_signer_new();
	TEST_ASSERT(tk_signer_add_file(s, good, errbuf, sizeof(errbuf)) == 0);
	TEST_ASSERT(tk_signer_add_file(s, good, errbuf, sizeof(errbuf)) == -1);
	TEST_ASSERT(strstr(errbuf, "duplicate kid") != NULL);
	char text[1024];
	EVP_PKEY *e2 = gen_ec("P-256"), *e3 = gen_ec("P-256");
	ec_jwk(e2, ",\"kid\":\"same\"", text, sizeof(text));
	TEST_ASSERT(tk_signer_add_file(s, write_text("same1.jwk", text, 0600), errbuf,
	                               sizeof(errbuf)) == 0);
	ec_jwk(e3, ",\"kid\":\"same\"", text, sizeof(text));
	TEST_ASSERT(tk_signer_add_file(s, write_text("same2.jwk", text, 0600), errbuf,
	                               sizeof(errbuf)) == -1);
	TEST_ASSERT(strstr(errbuf, "duplicate kid \"same\"") != NULL);
	TEST_ASSERT(tk_signer_count(s) == 2);     /* failures leave the set unchanged */
	/* Error buffer may be NULL or tiny. */
	TEST_ASSERT(tk_signer_add_file(s, p644, NULL, 0) == -1);
	char tiny[8];
	TEST_ASSERT(tk_signer_add_file(s, p644, tiny, sizeof(tiny)) == -1);
	TEST_ASSERT(strlen(tiny) == sizeof(tiny) - 1);
	tk_signer_free(s);
	EVP_PKEY_free(e2);
	EVP_PKEY_free(e3);
	EVP_PKEY_free(ec);
}

static const char *const PRIVATE_MEMBERS[] = { "d", "p", "q", "dp", "dq", "qi", "oth", "k" };

static void test_jwks_public(void)
{
	EVP_PKEY *ec = gen_ec("P-256"), *ed = gen_ed25519(), *rsa = gen_rsa(2048);
	tk_signer *s = tk_signer_new();
	TEST_ASSERT(tk_signer_add_file(s, write_pem("j-ec.pem", ec, PKCS8, 0600), NULL, 0) == 0);
	TEST_ASSERT(tk_signer_add_file(s, write_pem("j-ed.pem", ed, PKCS8, 0600), NULL, 0) == 0);
	TEST_ASSERT(tk_signer_add_file(s, write_pem("j-rsa.pem", rsa, PKCS8, 0600), NULL, 0) == 0);
	TEST_ASSERT(tk_signer_count(s) == 3);

	char *jwks = tk_signer_jwks_json(s);
	TEST_ASSERT(jwks != NULL);
	json_t *o = json_loads(jwks, JSON_REJECT_DUPLICATES, NULL);
	json_t *keys = json_object_get(o, "keys");
	TEST_ASSERT(json_is_array(keys) && json_array_size(keys) == 3);
	TEST_ASSERT(json_object_size(o) == 1);
	static const char *const algs[3] = { "ES256", "EdDSA", "RS256" };
	static const char *const ktys[3] = { "EC", "OKP", "RSA" };
	for (size_t i = 0; i < json_array_size(keys); i++) {
		json_t *k = json_array_get(keys, i);
		const char *kid = NULL, *alg = NULL;
		TEST_ASSERT(tk_signer_key_at(s, i, &kid, &alg) == 0);
		TEST_ASSERT_STR(jstr(k, "kid"), kid);
		TEST_ASSERT_STR(jstr(k, "alg"), algs[i]);
		TEST_ASSERT_STR(alg, algs[i]);
		TEST_ASSERT_STR(jstr(k, "kty"), ktys[i]);
		TEST_ASSERT_STR(jstr(k, "use"), "sig");
		for (size_t j = 0; j < sizeof(PRIVATE_MEMBERS) / sizeof(PRIVATE_MEMBERS[0]); j++)
			TEST_ASSERT(json_object_get(k, PRIVATE_MEMBERS[j]) == NULL);
		/* Exactly the expected members. */
		TEST_ASSERT(json_object_size(k) == (i == 0 ? 7u : i == 1 ? 6u : 6u));
	}
	TEST_ASSERT(tk_signer_key_at(s, 3, NULL, NULL) == -1);
	/* Textual check too: no private member name anywhere. */
	TEST_ASSERT(strstr(jwks, "\"d\"") == NULL && strstr(jwks, "\"p\"") == NULL &&
	            strstr(jwks, "\"qi\"") == NULL && strstr(jwks, "\"dp\"") == NULL);
	/* libjwt sees only public keys. */
	jwk_set_t *set = jwks_create(jwks);
	TEST_ASSERT(set && jwks_error_any(set) == 0 && jwks_item_count(set) == 3);
	for (size_t i = 0; set && i < jwks_item_count(set); i++)
		TEST_ASSERT(jwks_item_is_private(jwks_item_get(set, i)) == 0);
	jwks_free(set);
	json_decref(o);
	free(jwks);
	tk_signer_free(s);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(rsa);
}

/* C8: JWK x/y always exactly 32 bytes, over many fresh keys (a short
 * coordinate happens once in 128 keys). */
static void test_ec_coordinates_padded(void)
{
	int shortish = 0;
	for (int i = 0; i < 400; i++) {
		EVP_PKEY *ec = gen_ec("P-256");
		char *jwks;
		const char *path = write_pem("pad.pem", ec, PKCS8, 0600);
		tk_signer *s = load_one(path);
		unlink(path);
		npaths--;                                   /* reuse one name */
		TEST_ASSERT(s != NULL);
		jwks = tk_signer_jwks_json(s);
		json_t *o = json_loads(jwks, 0, NULL);
		json_t *k = json_array_get(json_object_get(o, "keys"), 0);
		TEST_ASSERT(strlen(jstr(k, "x")) == 43 && strlen(jstr(k, "y")) == 43);
		BIGNUM *x = NULL, *y = NULL;
		EVP_PKEY_get_bn_param(ec, OSSL_PKEY_PARAM_EC_PUB_X, &x);
		EVP_PKEY_get_bn_param(ec, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
		if (BN_num_bytes(x) < 32 || BN_num_bytes(y) < 32)
			shortish++;
		BN_free(x);
		BN_free(y);
		json_decref(o);
		free(jwks);
		tk_signer_free(s);
		EVP_PKEY_free(ec);
	}
	fprintf(stderr, "   %d of 400 keys had a coordinate shorter than 32 bytes\n", shortish);
}

/* Mint with one algorithm: structure, header, claims, signature, speed. */
static void mint_checks(const char *alg, EVP_PKEY *pk, const char *file, long expect_siglen,
                        int rounds)
{
	tk_signer *s = load_one(write_pem(file, pk, PKCS8, 0600));
	TEST_ASSERT(s != NULL);
	if (s == NULL)
		return;
	tk_minter *m = tk_minter_new(s, errbuf, sizeof(errbuf));
	TEST_ASSERT(m != NULL);
	const char *kid = tk_signer_active_kid(s);
	const char *aud1[] = { "https://api.example.com" };
	const char *aud2[] = { "https://api.example.com", "urn:other" };
	tk_token_claims c = base_claims(aud2, 2);
	char jti[TK_JTI_LEN + 1];
	struct parsed p;

	/* 1: two audiences, scope. */
	char *tok = tk_minter_mint(m, &c, jti, errbuf, sizeof(errbuf));
	TEST_ASSERT(tok != NULL);
	TEST_ASSERT(parse_token(tok, &p) == 0);
	TEST_ASSERT(p.segments == 3);
	TEST_ASSERT_STR(jstr(p.header, "typ"), "at+jwt");
	TEST_ASSERT_STR(jstr(p.header, "alg"), alg);
	TEST_ASSERT_STR(jstr(p.header, "kid"), kid);
	TEST_ASSERT(json_object_size(p.header) == 3);
	TEST_ASSERT_STR(jstr(p.claims, "iss"), c.iss);
	TEST_ASSERT_STR(jstr(p.claims, "sub"), c.sub);
	TEST_ASSERT_STR(jstr(p.claims, "client_id"), c.client_id);
	TEST_ASSERT_STR(jstr(p.claims, "scope"), "read write");
	TEST_ASSERT_STR(jstr(p.claims, "acct"), c.acct);
	TEST_ASSERT_STR(jstr(p.claims, "jti"), jti);
	TEST_ASSERT(strlen(jti) == TK_JTI_LEN);
	json_t *aud = json_object_get(p.claims, "aud");
	TEST_ASSERT(json_is_array(aud) && json_array_size(aud) == 2);
	TEST_ASSERT_STR(json_string_value(json_array_get(aud, 0)), aud2[0]);
	TEST_ASSERT_STR(json_string_value(json_array_get(aud, 1)), aud2[1]);
	TEST_ASSERT(json_is_integer(json_object_get(p.claims, "iat")) &&
	            json_integer_value(json_object_get(p.claims, "iat")) == c.iat);
	TEST_ASSERT(json_integer_value(json_object_get(p.claims, "nbf")) == c.iat);
	TEST_ASSERT(json_integer_value(json_object_get(p.claims, "exp")) == c.exp);
	TEST_ASSERT(json_object_size(p.claims) == 10);
	TEST_ASSERT(p.siglen == expect_siglen);
	TEST_ASSERT(verify_with_jwks(s, tok, kid, alg) == 0);
	/* A modified payload no longer verifies. */
	char *dot = strchr(tok, '.');
	dot[1] = dot[1] == 'e' ? 'f' : 'e';
	TEST_ASSERT(verify_with_jwks(s, tok, kid, alg) != 0);
	parsed_free(&p);
	free(tok);

	/* 2: one audience, no scope: string aud, no scope claim, nothing left over. */
	c = base_claims(aud1, 1);
	c.scope = NULL;
	c.sub = "participant-42";
	tok = tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf));
	TEST_ASSERT(tok != NULL && parse_token(tok, &p) == 0);
	TEST_ASSERT_STR(jstr(p.claims, "aud"), aud1[0]);
	TEST_ASSERT(json_object_get(p.claims, "scope") == NULL);
	TEST_ASSERT_STR(jstr(p.claims, "sub"), "participant-42");
	TEST_ASSERT(json_object_size(p.claims) == 9);
	TEST_ASSERT(json_object_size(p.header) == 3);
	TEST_ASSERT(verify_with_jwks(s, tok, kid, alg) == 0);
	parsed_free(&p);
	free(tok);
	c.scope = "";
	tok = tk_minter_mint(m, &c, NULL, NULL, 0);
	TEST_ASSERT(tok != NULL && parse_token(tok, &p) == 0);
	TEST_ASSERT(json_object_get(p.claims, "scope") == NULL);
	parsed_free(&p);
	free(tok);

	/* Speed (printed, not asserted); every ES256 signature is 64 bytes. */
	c = base_claims(aud1, 1);
	int bad_sig = 0;
	double t0 = now_s();
	for (int i = 0; i < rounds; i++) {
		tok = tk_minter_mint(m, &c, NULL, NULL, 0);
		if (tok == NULL) {
			bad_sig++;
			continue;
		}
		const char *sig = strrchr(tok, '.') + 1;
		size_t sl = strlen(sig);
		if (sl != tk_b64url_encoded_len((size_t)expect_siglen))
			bad_sig++;
		free(tok);
	}
	double dt = now_s() - t0;
	TEST_ASSERT(bad_sig == 0);
	fprintf(stderr, "   %s: %d mints in %.3f s = %.0f mints/s (%.1f us/token)\n", alg, rounds, dt,
	        rounds / dt, dt / rounds * 1e6);

	tk_minter_free(m);
	tk_signer_free(s);
}

static void test_mint_all_algs(void)
{
	EVP_PKEY *ec = gen_ec("P-256"), *ed = gen_ed25519(), *rsa = gen_rsa(2048);
	mint_checks("ES256", ec, "m-ec.pem", 64, 10000);
	mint_checks("EdDSA", ed, "m-ed.pem", 64, 10000);
	mint_checks("RS256", rsa, "m-rsa.pem", 256, 1000);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(rsa);
}

/* The claims writer: odd characters round-trip exactly through a JSON parser,
 * invalid UTF-8 is refused, origin and status appear as the shared contract
 * says, custom claims merge without replacing, and every token verifies. */
static void claims_writer_checks(const char *alg, EVP_PKEY *pk, const char *file)
{
	tk_signer *s = load_one(write_pem(file, pk, PKCS8, 0600));
	tk_minter *m = tk_minter_new(s, errbuf, sizeof(errbuf));
	const char *kid = tk_signer_active_kid(s);
	const char *aud[] = { "https://api.example.com/a\"b", "urn:x\\y" };
	const char odd[] = "q\"uote b\\ack /slash \x01\x1f\x7f \b\f\n\r\t J\xc3\xbcrgen \xe2\x82\xac "
	                   "\xf0\x9f\x94\x91 end";
	tk_token_claims c = base_claims(aud, 2);
	struct parsed p;
	size_t len = 0;
	char jti[TK_JTI_LEN + 1];

	TEST_ASSERT(m != NULL);
	c.sub = odd;
	c.scope = odd;
	c.env = "live\"\\";
	c.origin = "https://app.example.com";
	c.status_uri = "https://auth.example.com/statuslists/1?x=\"y\"";
	c.status_idx = 1234567;
	c.extra = "{\"plan\":\"pro\",\"sub\":\"not me\",\"origin\":\"nor me\",\"seats\":5,"
	          "\"ratio\":1.5,\"beta\":true,\"none\":null,\"regions\":[\"eu\",\"\\u0001\\\"\"],"
	          "\"n\\u00e9\":{\"deep\":[1,2]}}";
	const char *ref = tk_minter_mint_ref(m, &c, jti, &len, errbuf, sizeof(errbuf));
	TEST_ASSERT(ref != NULL && len == strlen(ref));
	TEST_ASSERT(ref != NULL && parse_token(ref, &p) == 0);
	if (ref == NULL)
		goto out;
	/* Once copied, the caller wipes it from the minter: nothing of it stays. */
	char *copy = strdup(ref);
	tk_minter_forget(m);
	size_t nonzero = 0;
	for (size_t i = 0; i < len; i++)
		nonzero += ref[i] != 0;
	TEST_ASSERT(nonzero == 0);
	ref = copy;
	TEST_ASSERT_STR(jstr(p.claims, "sub"), odd);
	TEST_ASSERT_STR(jstr(p.claims, "scope"), odd);
	TEST_ASSERT_STR(jstr(p.claims, "env"), "live\"\\");
	TEST_ASSERT_STR(jstr(p.claims, "origin"), "https://app.example.com");
	TEST_ASSERT_STR(jstr(p.claims, "jti"), jti);
	json_t *a = json_object_get(p.claims, "aud");
	TEST_ASSERT(json_array_size(a) == 2 &&
	            strcmp(json_string_value(json_array_get(a, 0)), aud[0]) == 0 &&
	            strcmp(json_string_value(json_array_get(a, 1)), aud[1]) == 0);
	json_t *sl = json_object_get(json_object_get(p.claims, "status"), "status_list");
	TEST_ASSERT(json_object_size(json_object_get(p.claims, "status")) == 1 &&
	            json_object_size(sl) == 2);
	TEST_ASSERT(json_integer_value(json_object_get(sl, "idx")) == 1234567);
	TEST_ASSERT_STR(json_string_value(json_object_get(sl, "uri")), c.status_uri);
	/* Custom claims: added, never replacing one of ours, values kept. */
	TEST_ASSERT_STR(jstr(p.claims, "plan"), "pro");
	TEST_ASSERT(json_integer_value(json_object_get(p.claims, "seats")) == 5);
	TEST_ASSERT(json_real_value(json_object_get(p.claims, "ratio")) == 1.5);
	TEST_ASSERT(json_is_true(json_object_get(p.claims, "beta")));
	TEST_ASSERT(json_is_null(json_object_get(p.claims, "none")));
	json_t *r = json_object_get(p.claims, "regions");
	TEST_ASSERT(json_array_size(r) == 2 && json_string_length(json_array_get(r, 1)) == 2 &&
	            memcmp(json_string_value(json_array_get(r, 1)), "\x01\"", 2) == 0);
	TEST_ASSERT(json_is_array(json_object_get(json_object_get(p.claims, "n\xc3\xa9"), "deep")));
	/* iss sub aud client_id scope acct iat nbf exp jti env origin status + 7 custom */
	TEST_ASSERT(json_object_size(p.claims) == 20);
	TEST_ASSERT(verify_with_jwks(s, ref, kid, alg) == 0);
	parsed_free(&p);
	free(copy);

	/* Absent fields stay absent: status only with a non-empty uri. */
	c = base_claims(aud, 1);
	c.status_uri = "";
	c.status_idx = 7;
	char *tok = tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf));
	TEST_ASSERT(tok != NULL && parse_token(tok, &p) == 0);
	TEST_ASSERT(json_object_get(p.claims, "status") == NULL &&
	            json_object_get(p.claims, "origin") == NULL &&
	            json_object_get(p.claims, "env") == NULL);
	TEST_ASSERT(json_object_size(p.claims) == 10);
	TEST_ASSERT(verify_with_jwks(s, tok, kid, alg) == 0);
	parsed_free(&p);
	free(tok);

	/* Invalid UTF-8 anywhere: refused with the claim named, no token. */
	static const char *const bad[] = {
		"\xc0\xaf",             /* overlong '/' */
		"\xe0\x80\xaf",         /* overlong, 3 bytes */
		"\xed\xa0\x80",         /* surrogate U+D800 */
		"\xf4\x90\x80\x80",     /* past U+10FFFF */
		"\xf5\x80\x80\x80",
		"abc\xe2\x82",          /* truncated */
		"\x80",                 /* lone continuation */
		"\xc3\x28",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = base_claims(aud, 1);
		c.origin = bad[i];
		TEST_ASSERT(tk_minter_mint_ref(m, &c, jti, &len, errbuf, sizeof(errbuf)) == NULL);
		TEST_ASSERT(strstr(errbuf, "origin") != NULL && jti[0] == '\0');
		c = base_claims(aud, 1);
		c.status_uri = bad[i];
		TEST_ASSERT(tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf)) == NULL);
		TEST_ASSERT(strstr(errbuf, "status") != NULL);
	}
	/* Custom claims that are not one JSON object: refused. */
	static const char *const bad_extra[] = { "[1]", "{\"a\":1", "{\"a\":1,\"a\":2}", "nope" };
	for (size_t i = 0; i < sizeof(bad_extra) / sizeof(bad_extra[0]); i++) {
		c = base_claims(aud, 1);
		c.extra = bad_extra[i];
		TEST_ASSERT(tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf)) == NULL);
		TEST_ASSERT(strstr(errbuf, "custom claims") != NULL);
	}
	/* Too long for TK_TOKEN_MAX: refused, and the next mint works. */
	static char big[TK_TOKEN_MAX];
	memset(big, 'x', sizeof(big) - 1);
	c = base_claims(aud, 1);
	c.sub = big;
	TEST_ASSERT(tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf)) == NULL);
	TEST_ASSERT(strstr(errbuf, "longer") != NULL);
	c.sub = big + sizeof(big) - 5000;
	tok = tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf));
	TEST_ASSERT(tok != NULL && strlen(tok) <= TK_TOKEN_MAX);
	TEST_ASSERT(tok != NULL && verify_with_jwks(s, tok, kid, alg) == 0);
	free(tok);
out:
	tk_minter_free(m);
	tk_signer_free(s);
}

static void test_claims_writer(void)
{
	EVP_PKEY *ec = gen_ec("P-256"), *ed = gen_ed25519(), *rsa = gen_rsa(2048);
	claims_writer_checks("ES256", ec, "w-ec.pem");
	claims_writer_checks("EdDSA", ed, "w-ed.pem");
	claims_writer_checks("RS256", rsa, "w-rsa.pem");
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(rsa);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void test_jti_unique(void)
{
	enum { N = 10000 };
	EVP_PKEY *ec = gen_ec("P-256");
	tk_signer *s = load_one(write_pem("jti.pem", ec, PKCS8, 0600));
	tk_minter *m = tk_minter_new(s, NULL, 0);
	const char *aud[] = { "a" };
	tk_token_claims c = base_claims(aud, 1);
	char (*jtis)[TK_JTI_LEN + 1] = calloc(N, sizeof(*jtis));
	int ok = 1, dups = 0;

	for (int i = 0; i < N && ok; i++) {
		char *tok = tk_minter_mint(m, &c, jtis[i], NULL, 0);
		ok = tok != NULL && strlen(jtis[i]) == TK_JTI_LEN && b64url_chars(jtis[i], TK_JTI_LEN);
		/* ES256 raw signature: exactly 64 bytes every time. */
		if (tok) {
			long sl = 0;
			const char *sig = strrchr(tok, '.') + 1;
			unsigned char *raw = seg_decode(sig, strlen(sig), &sl);
			if (sl != 64)
				ok = 0;
			free(raw);
		}
		free(tok);
	}
	TEST_ASSERT(ok);
	qsort(jtis, N, sizeof(*jtis), cmp_str);
	for (int i = 1; i < N; i++)
		if (strcmp(jtis[i - 1], jtis[i]) == 0)
			dups++;
	TEST_ASSERT(dups == 0);
	free(jtis);
	tk_minter_free(m);
	tk_signer_free(s);
	EVP_PKEY_free(ec);
}

static void test_mint_refusals(void)
{
	EVP_PKEY *ec = gen_ec("P-256");
	tk_signer *s = load_one(write_pem("r.pem", ec, PKCS8, 0600));
	tk_minter *m = tk_minter_new(s, NULL, 0);
	const char *aud[] = { "a", "" };
	tk_token_claims c;
	char jti[TK_JTI_LEN + 1];

	/* Invalid claims. */
	c = base_claims(aud, 1);
	c.iss = NULL;
	TEST_ASSERT(tk_minter_mint(m, &c, jti, errbuf, sizeof(errbuf)) == NULL);
	TEST_ASSERT(strstr(errbuf, "iss") != NULL && jti[0] == '\0');
	c = base_claims(aud, 1);
	c.sub = "";
	TEST_ASSERT(tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf)) == NULL);
	c = base_claims(aud, 1);
	c.acct = NULL;
	TEST_ASSERT(tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf)) == NULL);
	c = base_claims(aud, 1);
	c.client_id = NULL;
	TEST_ASSERT(tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf)) == NULL);
	c = base_claims(aud, 0);
	TEST_ASSERT(tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf)) == NULL);
	c = base_claims(aud, 2);                 /* second audience empty */
	TEST_ASSERT(tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf)) == NULL);
	c = base_claims(aud, 1);
	c.exp = c.iat;
	TEST_ASSERT(tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf)) == NULL);
	TEST_ASSERT(strstr(errbuf, "exp") != NULL);
	c = base_claims(aud, 1);
	c.sub = "bad\xff\xfe utf8";
	TEST_ASSERT(tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf)) == NULL);
	TEST_ASSERT(strstr(errbuf, "sub") != NULL);
	const char *aud_bad[] = { "ok", "\xc3\x28" };
	c = base_claims(aud_bad, 2);
	TEST_ASSERT(tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf)) == NULL);
	TEST_ASSERT(tk_minter_mint(m, NULL, NULL, errbuf, sizeof(errbuf)) == NULL);
	TEST_ASSERT(tk_minter_mint(NULL, &c, NULL, errbuf, sizeof(errbuf)) == NULL);

	/* CSPRNG failure: no token; the next mint works again. */
	c = base_claims(aud, 1);
	tk_random_fail_for_testing(1);
	TEST_ASSERT(tk_minter_mint(m, &c, jti, errbuf, sizeof(errbuf)) == NULL);
	TEST_ASSERT(strstr(errbuf, "CSPRNG") != NULL);
	TEST_ASSERT(jti[0] == '\0');
	char *tok = tk_minter_mint(m, &c, jti, errbuf, sizeof(errbuf));
	TEST_ASSERT(tok != NULL && strlen(jti) == TK_JTI_LEN);
	/* Unicode claims are fine. */
	c.sub = "J\xc3\xbcrgen \xe2\x82\xac";
	char *tok2 = tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf));
	struct parsed p;
	TEST_ASSERT(tok2 != NULL && parse_token(tok2, &p) == 0);
	TEST_ASSERT_STR(jstr(p.claims, "sub"), c.sub);
	parsed_free(&p);
	free(tok2);
	free(tok);

	/* No minter from an empty signer. */
	tk_signer *empty = tk_signer_new();
	TEST_ASSERT(tk_minter_new(empty, errbuf, sizeof(errbuf)) == NULL);
	TEST_ASSERT(tk_signer_active_kid(empty) == NULL && tk_signer_active_alg(empty) == NULL);
	char *jwks = tk_signer_jwks_json(empty);
	TEST_ASSERT_STR(jwks, "{\"keys\":[]}");
	free(jwks);
	tk_signer_free(empty);
	tk_signer_free(NULL);
	tk_minter_free(NULL);

	tk_minter_free(m);
	tk_signer_free(s);
	EVP_PKEY_free(ec);
}

static void test_active_and_frozen(void)
{
	EVP_PKEY *ec = gen_ec("P-256"), *rsa = gen_rsa(2048), *ed = gen_ed25519();
	char text[8192];
	tk_signer *s = tk_signer_new();
	ec_jwk(ec, ",\"kid\":\"k-ec\"", text, sizeof(text));
	TEST_ASSERT(tk_signer_add_file(s, write_text("a-ec.jwk", text, 0600), errbuf,
	                               sizeof(errbuf)) == 0);
	rsa_jwk(rsa, ",\"kid\":\"k-rsa\"", text, sizeof(text));
	TEST_ASSERT(tk_signer_add_file(s, write_text("a-rsa.jwk", text, 0600), errbuf,
	                               sizeof(errbuf)) == 0);
	TEST_ASSERT_STR(tk_signer_active_kid(s), "k-ec");        /* first added */
	TEST_ASSERT(tk_signer_set_active(s, "nope", errbuf, sizeof(errbuf)) == -1);
	TEST_ASSERT(strstr(errbuf, "nope") != NULL);
	TEST_ASSERT_STR(tk_signer_active_kid(s), "k-ec");

	tk_minter *m = tk_minter_new(s, errbuf, sizeof(errbuf));
	TEST_ASSERT(m != NULL);
	const char *aud[] = { "a" };
	tk_token_claims c = base_claims(aud, 1);
	struct parsed p;
	char *tok = tk_minter_mint(m, &c, NULL, NULL, 0);
	TEST_ASSERT(tok && parse_token(tok, &p) == 0);
	TEST_ASSERT_STR(jstr(p.header, "kid"), "k-ec");
	TEST_ASSERT_STR(jstr(p.header, "alg"), "ES256");
	parsed_free(&p);
	free(tok);

	/* Switch while a minter exists: the next mint uses the new key. */
	TEST_ASSERT(tk_signer_set_active(s, "k-rsa", errbuf, sizeof(errbuf)) == 0);
	TEST_ASSERT_STR(tk_signer_active_alg(s), "RS256");
	tok = tk_minter_mint(m, &c, NULL, NULL, 0);
	TEST_ASSERT(tok && parse_token(tok, &p) == 0);
	TEST_ASSERT_STR(jstr(p.header, "kid"), "k-rsa");
	TEST_ASSERT_STR(jstr(p.header, "alg"), "RS256");
	TEST_ASSERT(p.siglen == 256);
	TEST_ASSERT(verify_with_jwks(s, tok, "k-rsa", "RS256") == 0);
	/* The token does not verify under the other key. */
	TEST_ASSERT(verify_with_jwks(s, tok, "k-ec", "ES256") != 0);
	parsed_free(&p);
	free(tok);

	/* Frozen: no keys can be added once minting has started. */
	TEST_ASSERT(tk_signer_add_file(s, write_pem("late.pem", ed, PKCS8, 0600), errbuf,
	                               sizeof(errbuf)) == -1);
	TEST_ASSERT(strstr(errbuf, "before minting") != NULL);
	TEST_ASSERT(tk_signer_count(s) == 2);

	tk_minter_free(m);
	tk_signer_free(s);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
}

/* Several threads, one minter each, sharing one signer. */
struct thread_arg {
	const tk_signer *s;
	int n, failures;
};

static void *mint_thread(void *p)
{
	struct thread_arg *a = p;
	tk_minter *m = tk_minter_new(a->s, NULL, 0);
	const char *aud[] = { "svc-a", "svc-b" };
	tk_token_claims c = base_claims(aud, 2);
	if (m == NULL) {
		a->failures = a->n;
		return NULL;
	}
	for (int i = 0; i < a->n; i++) {
		char *tok = tk_minter_mint(m, &c, NULL, NULL, 0);
		if (tok == NULL || (i % 100 == 0 &&
		                    verify_with_jwks(a->s, tok, tk_signer_active_kid(a->s), "ES256") != 0))
			a->failures++;
		free(tok);
	}
	tk_minter_free(m);
	return NULL;
}

static void test_threads(void)
{
	enum { T = 4 };
	EVP_PKEY *ec = gen_ec("P-256");
	tk_signer *s = load_one(write_pem("t.pem", ec, PKCS8, 0600));
	pthread_t th[T];
	struct thread_arg args[T];
	double t0 = now_s();
	for (int i = 0; i < T; i++) {
		args[i] = (struct thread_arg){ s, 2000, 0 };
		TEST_ASSERT(pthread_create(&th[i], NULL, mint_thread, &args[i]) == 0);
	}
	int failures = 0;
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		failures += args[i].failures;
	}
	double dt = now_s() - t0;
	TEST_ASSERT(failures == 0);
	fprintf(stderr, "   ES256, %d threads: %.0f mints/s total\n", T, T * 2000 / dt);
	tk_signer_free(s);
	EVP_PKEY_free(ec);
}

/* Generated keys: loaded from memory under their kid; a key under another
 * kid is refused; a cleared active key mints nothing. */
static void test_generate_and_add_key(void)
{
	static const char *const algs[] = { "ES256", "EdDSA", "RS256" };
	static const char *const aud[] = { "https://api.example" };
	tk_signer *s = tk_signer_new();
	char kids[3][TK_THUMBPRINT_LEN + 1];

	for (int i = 0; i < 3; i++) {
		char *pub = NULL;
		char *priv = tk_signing_key_generate(algs[i], kids[i], &pub, errbuf, sizeof(errbuf));
		TEST_ASSERT(priv != NULL && pub != NULL);
		if (priv == NULL || pub == NULL)
			return;
		TEST_ASSERT(strlen(kids[i]) == TK_THUMBPRINT_LEN);
		TEST_ASSERT(strstr(pub, "\"d\"") == NULL && strstr(priv, "\"d\"") != NULL);
		/* Under another kid: refused, set unchanged. */
		TEST_ASSERT(tk_signer_add_key(s, priv, strlen(priv), i ? kids[0] : "not-the-kid", "k",
		                              errbuf, sizeof(errbuf)) == -1);
		TEST_ASSERT(strstr(errbuf, "thumbprint") != NULL);
		TEST_ASSERT(tk_signer_count(s) == (size_t)i);
		TEST_ASSERT(tk_signer_add_key(s, priv, strlen(priv), kids[i], "k", errbuf,
		                              sizeof(errbuf)) == 0);
		tk_wipe(priv, strlen(priv));
		free(priv);
		free(pub);
	}
	char kid[TK_THUMBPRINT_LEN + 1], *pub = NULL;
	TEST_ASSERT(tk_signing_key_generate("HS256", kid, &pub, errbuf, sizeof(errbuf)) == NULL);
	TEST_ASSERT(pub == NULL && strstr(errbuf, "unknown") != NULL);
	TEST_ASSERT(tk_signer_add_key(s, "{}", 2, NULL, "k", errbuf, sizeof(errbuf)) == -1);
	TEST_ASSERT(tk_signer_count(s) == 3);
	TEST_ASSERT_STR(tk_signer_active_kid(s), kids[0]);

	tk_minter *m = tk_minter_new(s, errbuf, sizeof(errbuf));
	tk_token_claims c = base_claims(aud, 1);
	tk_signer_clear_active(s);
	TEST_ASSERT(tk_signer_active_kid(s) == NULL);
	char *tok = tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf));
	TEST_ASSERT(tok == NULL);
	TEST_ASSERT(tk_signer_set_active(s, kids[1], errbuf, sizeof(errbuf)) == 0);
	tok = tk_minter_mint(m, &c, NULL, errbuf, sizeof(errbuf));
	TEST_ASSERT(tok != NULL);
	free(tok);
	tk_minter_free(m);
	tk_signer_free(s);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/tk-signer-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}

	TEST_RUN(test_thumbprint_rfc7638);
	TEST_RUN(test_pem_keys);
	TEST_RUN(test_jwk_files);
	TEST_RUN(test_refusals);
	TEST_RUN(test_jwks_public);
	TEST_RUN(test_ec_coordinates_padded);
	TEST_RUN(test_mint_all_algs);
	TEST_RUN(test_claims_writer);
	TEST_RUN(test_jti_unique);
	TEST_RUN(test_mint_refusals);
	TEST_RUN(test_active_and_frozen);
	TEST_RUN(test_threads);
	TEST_RUN(test_generate_and_add_key);

	for (int i = 0; i < npaths; i++)
		unlink(paths[i]);
	if (rmdir(dir) != 0)
		fprintf(stderr, "warning: could not remove %s: %s\n", dir, strerror(errno));
	TEST_DONE();
}
