/*
 * fuzz_statuslist.c - tk_status_list_parse, the verifier's reading of a
 * Token Status List token (statuslist.h), against the fixed test JWK Set of
 * testkeys.h: signature and typ, claims, base64url, bounded ZLIB inflation.
 *
 * Three kinds of input:
 *   - "Z" + bytes: the bytes are a "lst" value's compressed data; the harness
 *     wraps them in valid claims and signs them (Ed25519 test key), so the
 *     inflater itself is fuzzed (bombs, truncation, trailing data).
 *   - "{...header JSON...}\0{...payload JSON...}": encoded and signed by the
 *     harness, so the claim checks are fuzzed.
 *   - anything else is a token as it is: it can carry no valid signature, so
 *     an acceptance is a forgery and aborts.
 * Oracle for an accepted list: at most TK_STATUS_BYTES_MAX bytes, every index
 * below its size reads 0 or 1 and none beyond it does.
 */
#include "fuzz.h"
#include "testkeys.h"

#include <tokend/crypto.h>
#include <tokend/statuslist.h>
#include <tokend/verify.h>

#define URI FUZZ_ISSUER "/oauth2/status-list"

static tk_verifier *ver;
static EVP_PKEY *edkey;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];
	(void)argc;
	(void)argv;
	json_object_seed(0x746f6b65);
	char *jwks = fuzz_test_jwks();
	edkey = fuzz_eddsa_key();
	ver = tk_verifier_new();
	if (!ver || tk_verifier_load_jwks(ver, jwks, strlen(jwks), err, sizeof err) != 0 ||
	    tk_verifier_set_issuer(ver, FUZZ_ISSUER, err, sizeof err) != 0)
		fuzz_die(err);
	free(jwks);
	return 0;
}

/* base64url(h) + "." + base64url(p) + "." + base64url(Ed25519 signature). */
static char *sign_parts(const void *h, size_t hl, const void *p, size_t pl, size_t *tlen)
{
	size_t cap = tk_b64url_encoded_len(hl) + tk_b64url_encoded_len(pl) +
	             tk_b64url_encoded_len(64) + 3;
	char *t = malloc(cap);
	unsigned char sig[64];
	size_t sl = sizeof(sig), n;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!t || !ctx)
		abort();
	n = tk_b64url_encode(h, hl, t);
	t[n++] = '.';
	n += tk_b64url_encode(p, pl, t + n);
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, edkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &sl, (const unsigned char *)t, n) != 1 || sl != 64)
		fuzz_die("Ed25519 signing");
	EVP_MD_CTX_free(ctx);
	t[n++] = '.';
	n += tk_b64url_encode(sig, sl, t + n);
	*tlen = n;
	return t;
}

static void check(const char *tok, size_t len, int forged)
{
	tk_status_list *l = (tk_status_list *)1;
	char err[256];
	int rc = tk_status_list_parse(ver, tok, len, URI, FUZZ_NOW, &l, err, sizeof err);

	FUZZ_CHECK(rc >= TK_VERIFY_OK && rc <= TK_VERIFY_STATUS_UNKNOWN);
	FUZZ_CHECK(rc != TK_VERIFY_EINVAL && rc != TK_VERIFY_INTERNAL);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (rc != TK_VERIFY_OK) {
		FUZZ_CHECK(l == NULL && err[0] != '\0');
		for (const char *p = err; *p; p++)
			FUZZ_CHECK(*p >= 0x20 && *p <= 0x7e);
		return;
	}
	FUZZ_CHECK(!forged && l != NULL);
	size_t n = tk_status_list_size(l);
	FUZZ_CHECK(n > 0 && n / 8 <= TK_STATUS_BYTES_MAX);
	FUZZ_CHECK(tk_status_list_get(l, -1) == -1);
	FUZZ_CHECK(tk_status_list_get(l, (int64_t)n) == -1);
	for (size_t i = 0; i < n && i < 4096; i++) {
		int b = tk_status_list_get(l, (int64_t)i);
		FUZZ_CHECK(b == 0 || b == 1);
	}
	FUZZ_CHECK(tk_status_list_exp(l) > FUZZ_NOW - TK_VERIFY_LEEWAY_DEFAULT);
	tk_status_list_free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char hdr[] = "{\"alg\":\"EdDSA\",\"kid\":\"" FUZZ_KID_EDDSA
	                          "\",\"typ\":\"statuslist+jwt\"}";
	size_t tlen;
	char *tok;

	if (size > 256 * 1024)
		return 0;
	if (size > 0 && data[0] == 'Z') {
		char *lst = malloc(tk_b64url_encoded_len(size) + 1);
		json_t *o;
		char *claims;
		if (!lst)
			abort();
		tk_b64url_encode(data + 1, size - 1, lst);
		o = json_pack("{s:s,s:I,s:I,s:i,s:{s:i,s:s}}", "sub", URI, "iat", (json_int_t)FUZZ_NOW,
		              "exp", (json_int_t)(FUZZ_NOW + 60), "ttl", 30, "status_list", "bits", 1,
		              "lst", lst);
		claims = o ? json_dumps(o, JSON_COMPACT) : NULL;
		if (!claims)
			abort();
		tok = sign_parts(hdr, strlen(hdr), claims, strlen(claims), &tlen);
		check(tok, tlen, 0);
		free(tok);
		free(claims);
		json_decref(o);
		free(lst);
		return 0;
	}
	if (size > 0 && data[0] == '{') {
		const uint8_t *nul = memchr(data, '\0', size);
		size_t hl = nul ? (size_t)(nul - data) : size;
		size_t pl = nul ? size - hl - 1 : 0;
		tok = sign_parts(data, hl, nul ? nul + 1 : data + size, pl, &tlen);
		check(tok, tlen, 0);
		free(tok);
		return 0;
	}
	check((const char *)data, size, 1);
	return 0;
}
