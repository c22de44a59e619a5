/*
 * test_statuslist.c - the Token Status List (statuslist.h): encoding and its
 * bit order (the draft's own example), status list tokens signed with
 * tk_minter_sign and verified with the access-token verifier's keys, the
 * refusals (typ swap, other key, wrong sub, expired, bits, inflation bomb,
 * trailing data, raw DEFLATE), the status claim in minted tokens, and the
 * cache's refresh and fail-closed rules.
 *
 * Keys are generated at run time with `openssl genpkey` into a private
 * mkdtemp directory and removed at the end; nothing is committed.
 */
#include "unit.h"

#include "tokend/crypto.h"
#include "tokend/signer.h"
#include "tokend/statuslist.h"
#include "tokend/verify.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zlib.h>

#define ISS "https://issuer.test"
#define URI "https://issuer.test/oauth2/status-list"

static char dir[64], path_a[128], path_b[128];
static tk_signer *sa, *sb;           /* sa is in the verifier's JWKS, sb is not */
static tk_minter *ma, *mb;
static tk_verifier *ver;
static int64_t NOW;
static char errbuf[512];

static int gen_key(const char *path)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
	         "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out '%s' 2>/dev/null",
	         path);
	if (system(cmd) != 0)
		return -1;
	return chmod(path, 0600);
}

static int setup(void)
{
	char *jwks;

	snprintf(path_a, sizeof(path_a), "%s/a.pem", dir);
	snprintf(path_b, sizeof(path_b), "%s/b.pem", dir);
	if (gen_key(path_a) != 0 || gen_key(path_b) != 0)
		return -1;
	sa = tk_signer_new();
	sb = tk_signer_new();
	if (tk_signer_add_file(sa, path_a, errbuf, sizeof(errbuf)) != 0 ||
	    tk_signer_add_file(sb, path_b, errbuf, sizeof(errbuf)) != 0)
		return -1;
	ma = tk_minter_new(sa, errbuf, sizeof(errbuf));
	mb = tk_minter_new(sb, errbuf, sizeof(errbuf));
	jwks = tk_signer_jwks_json(sa);
	ver = tk_verifier_new();
	if (!ma || !mb || !jwks || !ver ||
	    tk_verifier_load_jwks(ver, jwks, strlen(jwks), errbuf, sizeof(errbuf)) != 0 ||
	    tk_verifier_set_issuer(ver, ISS, errbuf, sizeof(errbuf)) != 0) {
		free(jwks);
		return -1;
	}
	free(jwks);
	return 0;
}

static void teardown(void)
{
	tk_verifier_free(ver);
	tk_minter_free(ma);
	tk_minter_free(mb);
	tk_signer_free(sa);
	tk_signer_free(sb);
	unlink(path_a);
	unlink(path_b);
	rmdir(dir);
}

/* A status list token over `lst` signed by minter `m` with header typ `typ`;
 * `bits` and the times as given. */
static char *sl_token(tk_minter *m, const char *typ, const char *sub, const char *lst, int bits,
                      int64_t iat, int64_t exp, int64_t ttl)
{
	json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:{s:i,s:s}}", "sub", sub, "iss", ISS, "iat",
	                      (json_int_t)iat, "exp", (json_int_t)exp, "status_list", "bits", bits,
	                      "lst", lst);
	char *text, *tok;

	if (ttl > 0)
		json_object_set_new(o, "ttl", json_integer(ttl));
	text = json_dumps(o, JSON_COMPACT);
	tok = tk_minter_sign(m, typ, text, TK_STATUS_TOKEN_MAX, errbuf, sizeof(errbuf));
	TEST_ASSERT(tok != NULL);
	free(text);
	json_decref(o);
	return tok;
}

static char *lst_of(const unsigned char *bytes, size_t n)
{
	char *lst = tk_status_list_encode(bytes, n, errbuf, sizeof(errbuf));
	TEST_ASSERT(lst != NULL);
	return lst;
}

static int parse(const char *tok, tk_status_list **l)
{
	return tk_status_list_parse(ver, tok, strlen(tok), URI, NOW, l, errbuf, sizeof(errbuf));
}

/* The draft's example: bytes B9 A3, lst "eNrbuRgAAhcBXQ"; index 0 is the
 * least significant bit of byte 0. */
static void test_draft_example(void)
{
	static const unsigned char bytes[2] = { 0xB9, 0xA3 };
	static const int want[16] = { 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1 };
	char *lst = lst_of(bytes, 2);
	tk_status_list *l = NULL;
	char *tok;

	TEST_ASSERT_STR(lst, "eNrbuRgAAhcBXQ");
	tok = sl_token(ma, "statuslist+jwt", URI, "eNrbuRgAAhcBXQ", 1, NOW, NOW + 120, 60);
	TEST_ASSERT(parse(tok, &l) == TK_VERIFY_OK);
	TEST_ASSERT(tk_status_list_size(l) == 16);
	for (int i = 0; i < 16; i++)
		TEST_ASSERT(tk_status_list_get(l, i) == want[i]);
	TEST_ASSERT(tk_status_list_get(l, 16) == -1);
	TEST_ASSERT(tk_status_list_get(l, -1) == -1);
	TEST_ASSERT(tk_status_list_ttl(l) == 60);
	TEST_ASSERT(tk_status_list_exp(l) == NOW + 120);
	tk_status_list_free(l);
	free(tok);
	free(lst);
}

/* 100,000 indexes, a few set: a large list round-trips and stays small. */
static void test_large_list(void)
{
	size_t n = 100000 / 8;
	unsigned char *bytes = calloc(1, n);
	tk_status_list *l = NULL;
	char *lst, *tok;

	bytes[0] |= 1;
	bytes[12345 / 8] |= (unsigned char)(1u << (12345 % 8));
	bytes[99999 / 8] |= (unsigned char)(1u << (99999 % 8));
	lst = lst_of(bytes, n);
	TEST_ASSERT(strlen(lst) < 200);
	tok = sl_token(ma, "statuslist+jwt", URI, lst, 1, NOW, NOW + 120, 60);
	TEST_ASSERT(parse(tok, &l) == TK_VERIFY_OK);
	TEST_ASSERT(tk_status_list_size(l) == 100000);
	TEST_ASSERT(tk_status_list_get(l, 0) == 1 && tk_status_list_get(l, 1) == 0);
	TEST_ASSERT(tk_status_list_get(l, 12345) == 1 && tk_status_list_get(l, 12344) == 0);
	TEST_ASSERT(tk_status_list_get(l, 99999) == 1 && tk_status_list_get(l, 99998) == 0);
	tk_status_list_free(l);
	free(tok);
	free(lst);
	free(bytes);
}

static void test_refusals(void)
{
	static const unsigned char one[1] = { 1 };
	tk_status_list *l = NULL;
	char *lst = lst_of(one, 1), *tok, *p;

	/* An access-token typ is not a status list, and the other way round. */
	tok = sl_token(ma, "at+jwt", URI, lst, 1, NOW, NOW + 60, 30);
	TEST_ASSERT(parse(tok, &l) == TK_VERIFY_TYP && l == NULL);
	free(tok);
	tok = sl_token(ma, "statuslist+jwt", URI, lst, 1, NOW, NOW + 60, 30);
	TEST_ASSERT(tk_verify_at(ver, tok, strlen(tok), NOW, NULL, errbuf, sizeof(errbuf)) ==
	            TK_VERIFY_TYP);
	/* Tampered payload. */
	p = strchr(tok, '.') + 3;
	*p = *p == 'A' ? 'B' : 'A';
	TEST_ASSERT(parse(tok, &l) != TK_VERIFY_OK && l == NULL);
	free(tok);
	/* The media-type form of typ is accepted. */
	tok = sl_token(ma, "application/statuslist+jwt", URI, lst, 1, NOW, NOW + 60, 30);
	TEST_ASSERT(parse(tok, &l) == TK_VERIFY_OK);
	tk_status_list_free(l);
	l = NULL;
	free(tok);
	/* A key outside the JWKS. */
	tok = sl_token(mb, "statuslist+jwt", URI, lst, 1, NOW, NOW + 60, 30);
	TEST_ASSERT(parse(tok, &l) == TK_VERIFY_KID_UNKNOWN && l == NULL);
	free(tok);
	/* Another list's URI. */
	tok = sl_token(ma, "statuslist+jwt", URI "2", lst, 1, NOW, NOW + 60, 30);
	TEST_ASSERT(parse(tok, &l) != TK_VERIFY_OK && l == NULL);
	free(tok);
	/* Expired, issued in the future. */
	tok = sl_token(ma, "statuslist+jwt", URI, lst, 1, NOW - 200, NOW - 100, 30);
	TEST_ASSERT(parse(tok, &l) == TK_VERIFY_EXPIRED && l == NULL);
	free(tok);
	tok = sl_token(ma, "statuslist+jwt", URI, lst, 1, NOW + 500, NOW + 600, 30);
	TEST_ASSERT(parse(tok, &l) == TK_VERIFY_IAT_FUTURE && l == NULL);
	free(tok);
	/* Two bits per token is not what tokend speaks. */
	tok = sl_token(ma, "statuslist+jwt", URI, lst, 2, NOW, NOW + 60, 30);
	TEST_ASSERT(parse(tok, &l) == TK_VERIFY_CLAIM_TYPE && l == NULL);
	free(tok);
	/* lst that is not base64url, not ZLIB (raw DEFLATE has no header). */
	tok = sl_token(ma, "statuslist+jwt", URI, "eNrbuRgAAhcBXQ==", 1, NOW, NOW + 60, 30);
	TEST_ASSERT(parse(tok, &l) == TK_VERIFY_MALFORMED && l == NULL);
	free(tok);
	tok = sl_token(ma, "statuslist+jwt", URI, "27kYAA", 1, NOW, NOW + 60, 30);
	TEST_ASSERT(parse(tok, &l) == TK_VERIFY_MALFORMED && l == NULL);
	free(tok);
	free(lst);
}

/* A few kilobytes that would inflate beyond TK_STATUS_BYTES_MAX, and a
 * stream with data after its end: refused. */
static void test_bomb_and_trailing(void)
{
	size_t big = TK_STATUS_BYTES_MAX + 1;
	unsigned char *zeros = calloc(1, big);
	uLongf zl = compressBound(big);
	unsigned char *z = malloc(zl + 4);
	char *lst, *tok;
	tk_status_list *l = NULL;

	TEST_ASSERT(compress2(z, &zl, zeros, big, 9) == Z_OK);
	TEST_ASSERT(zl < 64 * 1024);
	lst = malloc(tk_b64url_encoded_len(zl) + 1);
	tk_b64url_encode(z, zl, lst);
	tok = sl_token(ma, "statuslist+jwt", URI, lst, 1, NOW, NOW + 60, 30);
	TEST_ASSERT(parse(tok, &l) == TK_VERIFY_MALFORMED && l == NULL);
	TEST_ASSERT(strstr(errbuf, "more than") != NULL);
	free(tok);
	free(lst);
	TEST_ASSERT(tk_status_list_encode(zeros, big, errbuf, sizeof(errbuf)) == NULL);

	zl = compressBound(8);
	TEST_ASSERT(compress2(z, &zl, zeros, 8, 9) == Z_OK);
	z[zl++] = 0x00;
	lst = malloc(tk_b64url_encoded_len(zl) + 1);
	tk_b64url_encode(z, zl, lst);
	tok = sl_token(ma, "statuslist+jwt", URI, lst, 1, NOW, NOW + 60, 30);
	TEST_ASSERT(parse(tok, &l) == TK_VERIFY_MALFORMED && l == NULL);
	free(tok);
	free(lst);
	free(z);
	free(zeros);
}

/* The status claim in a minted token, and its absence by default. */
static void test_minted_status_claim(void)
{
	const char *aud[1] = { "https://api.test" };
	tk_token_claims c = { .iss = ISS, .sub = "s", .aud = aud, .aud_count = 1, .client_id = "c",
	                      .acct = "a", .iat = NOW, .exp = NOW + 60, .status_uri = URI,
	                      .status_idx = 42 };
	tk_claims out;
	json_t *sl;
	char *tok = tk_minter_mint(ma, &c, NULL, errbuf, sizeof(errbuf));

	TEST_ASSERT(tok != NULL);
	TEST_ASSERT(tk_verify_at(ver, tok, strlen(tok), NOW, &out, errbuf, sizeof(errbuf)) == 0);
	sl = json_object_get(json_object_get(out.json, "status"), "status_list");
	TEST_ASSERT(json_integer_value(json_object_get(sl, "idx")) == 42);
	TEST_ASSERT_STR(json_string_value(json_object_get(sl, "uri")), URI);
	tk_claims_release(&out);
	free(tok);
	c.status_uri = NULL;
	tok = tk_minter_mint(ma, &c, NULL, errbuf, sizeof(errbuf));
	TEST_ASSERT(tk_verify_at(ver, tok, strlen(tok), NOW, &out, errbuf, sizeof(errbuf)) == 0);
	TEST_ASSERT(json_object_get(out.json, "status") == NULL);
	tk_claims_release(&out);
	free(tok);
	c.status_uri = URI;
	c.status_idx = -1;
	TEST_ASSERT(tk_minter_mint(ma, &c, NULL, errbuf, sizeof(errbuf)) == NULL);
	/* tk_minter_sign refuses what is not one JSON object. */
	TEST_ASSERT(tk_minter_sign(ma, "statuslist+jwt", "[1]", 0, errbuf, sizeof(errbuf)) == NULL);
	TEST_ASSERT(tk_minter_sign(ma, "", "{}", 0, errbuf, sizeof(errbuf)) == NULL);
}

/* Claims of a verified token with the given status claim (JSON text, or NULL). */
static tk_claims claims_with(const char *status)
{
	tk_claims c;

	memset(&c, 0, sizeof(c));
	c.json = json_object();
	if (status)
		json_object_set_new(c.json, "status", json_loads(status, 0, NULL));
	return c;
}

static void test_cache(void)
{
	unsigned char bytes[2] = { 0x04, 0x00 };        /* index 2 listed */
	char *lst = lst_of(bytes, 2), *tok;
	tk_claims ok = claims_with("{\"status_list\":{\"idx\":1,\"uri\":\"" URI "\"}}");
	tk_claims bad = claims_with("{\"status_list\":{\"idx\":2,\"uri\":\"" URI "\"}}");
	tk_claims far = claims_with("{\"status_list\":{\"idx\":16,\"uri\":\"" URI "\"}}");
	tk_claims other = claims_with("{\"status_list\":{\"idx\":1,\"uri\":\"https://evil.test/l\"}}");
	tk_claims junk = claims_with("{\"status_list\":{\"idx\":\"1\",\"uri\":\"" URI "\"}}");
	tk_claims none = claims_with(NULL);
	tk_status_cache *c;

	TEST_ASSERT(tk_status_cache_new("ftp://x", 1, 60, errbuf, sizeof(errbuf)) == NULL);
	TEST_ASSERT(tk_status_cache_new(URI, 0, 60, errbuf, sizeof(errbuf)) == NULL);
	TEST_ASSERT(tk_status_cache_new(URI, 10, 5, errbuf, sizeof(errbuf)) == NULL);
	c = tk_status_cache_new(URI, 2, 30, errbuf, sizeof(errbuf));
	TEST_ASSERT(c != NULL);

	/* Nothing fetched yet: due, and fail closed. */
	TEST_ASSERT(tk_status_cache_due(c, NOW) == 1);
	TEST_ASSERT(tk_status_check(c, &ok, NOW, errbuf, sizeof(errbuf)) == TK_VERIFY_STATUS_UNKNOWN);
	TEST_ASSERT(tk_status_check(c, &none, NOW, errbuf, sizeof(errbuf)) == TK_VERIFY_OK);
	/* A failed fetch: not due again before refresh_min. */
	tk_status_cache_failed(c, NOW);
	TEST_ASSERT(tk_status_cache_due(c, NOW + 1) == 0);
	TEST_ASSERT(tk_status_cache_due(c, NOW + 2) == 1);

	/* ttl 10: due 10 s after the install; a refused list keeps the old one. */
	tok = sl_token(ma, "statuslist+jwt", URI, lst, 1, NOW, NOW + 20, 10);
	TEST_ASSERT(tk_status_cache_install(c, ver, tok, strlen(tok), NOW, errbuf, sizeof(errbuf)) == 0);
	free(tok);
	TEST_ASSERT(tk_status_cache_due(c, NOW + 9) == 0);
	TEST_ASSERT(tk_status_cache_due(c, NOW + 10) == 1);
	TEST_ASSERT(tk_status_check(c, &ok, NOW, errbuf, sizeof(errbuf)) == TK_VERIFY_OK);
	TEST_ASSERT(tk_status_check(c, &bad, NOW, errbuf, sizeof(errbuf)) == TK_VERIFY_STATUS);
	TEST_ASSERT(tk_status_check(c, &other, NOW, errbuf, sizeof(errbuf)) == TK_VERIFY_STATUS_UNKNOWN);
	TEST_ASSERT(tk_status_check(c, &junk, NOW, errbuf, sizeof(errbuf)) == TK_VERIFY_STATUS_UNKNOWN);
	tok = sl_token(mb, "statuslist+jwt", URI, lst, 1, NOW, NOW + 20, 10);
	TEST_ASSERT(tk_status_cache_install(c, ver, tok, strlen(tok), NOW + 3, errbuf, sizeof(errbuf)) ==
	            TK_VERIFY_KID_UNKNOWN);
	free(tok);
	TEST_ASSERT(tk_status_check(c, &bad, NOW + 3, errbuf, sizeof(errbuf)) == TK_VERIFY_STATUS);
	/* An index beyond the list: unknown, and a refresh is due (after min). */
	TEST_ASSERT(tk_status_check(c, &far, NOW + 5, errbuf, sizeof(errbuf)) == TK_VERIFY_STATUS_UNKNOWN);
	TEST_ASSERT(tk_status_cache_due(c, NOW + 5) == 1);
	/* Past the list's exp (and the leeway): every token with a status is refused. */
	TEST_ASSERT(tk_status_check(c, &ok, NOW + 20 + 30, errbuf, sizeof(errbuf)) ==
	            TK_VERIFY_STATUS_UNKNOWN);
	TEST_ASSERT(tk_status_check(c, &none, NOW + 60, errbuf, sizeof(errbuf)) == TK_VERIFY_OK);

	/* ttl bounded: 1000 -> refresh_max 30; 1 -> refresh_min 2. */
	tok = sl_token(ma, "statuslist+jwt", URI, lst, 1, NOW, NOW + 2000, 1000);
	TEST_ASSERT(tk_status_cache_install(c, ver, tok, strlen(tok), NOW + 100, errbuf, sizeof(errbuf)) == 0);
	free(tok);
	TEST_ASSERT(tk_status_cache_due(c, NOW + 129) == 0);
	TEST_ASSERT(tk_status_cache_due(c, NOW + 130) == 1);
	tok = sl_token(ma, "statuslist+jwt", URI, lst, 1, NOW + 200, NOW + 2000, 1);
	TEST_ASSERT(tk_status_cache_install(c, ver, tok, strlen(tok), NOW + 200, errbuf, sizeof(errbuf)) == 0);
	free(tok);
	TEST_ASSERT(tk_status_cache_due(c, NOW + 201) == 0);
	TEST_ASSERT(tk_status_cache_due(c, NOW + 202) == 1);
	/* A replayed older list (issued before a revocation) never replaces a
	 * newer one: the revoked key stays listed. */
	static const unsigned char zeros[2] = { 0, 0 };
	char *lst0 = lst_of(zeros, 2);
	tok = sl_token(ma, "statuslist+jwt", URI, lst0, 1, NOW + 150, NOW + 2000, 1);
	TEST_ASSERT(tk_status_cache_install(c, ver, tok, strlen(tok), NOW + 203, errbuf, sizeof(errbuf)) != 0);
	free(tok);
	free(lst0);
	TEST_ASSERT(tk_status_check(c, &bad, NOW + 203, errbuf, sizeof(errbuf)) == TK_VERIFY_STATUS);

	tk_status_cache_free(c);
	tk_claims_release(&ok);
	tk_claims_release(&bad);
	tk_claims_release(&far);
	tk_claims_release(&other);
	tk_claims_release(&junk);
	tk_claims_release(&none);
	free(lst);
}

int main(void)
{
	json_object_seed(0);
	NOW = (int64_t)time(NULL);
	snprintf(dir, sizeof(dir), "/tmp/tk-statuslist-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	if (setup() != 0) {
		fprintf(stderr, "setup failed: %s\n", errbuf);
		teardown();
		return 1;
	}
	TEST_RUN(test_draft_example);
	TEST_RUN(test_large_list);
	TEST_RUN(test_refusals);
	TEST_RUN(test_bomb_and_trailing);
	TEST_RUN(test_minted_status_claim);
	TEST_RUN(test_cache);
	teardown();
	TEST_DONE();
}
