/*
 * mint.c - RFC 9068 access tokens, the hot path. A tk_minter prepares once
 * per signing key what every token of that key shares, so that a mint is:
 * claims written straight into the minter's buffer (no jansson, no
 * allocation of ours unless the key carries custom claims), base64url, one
 * signature from a context that was initialised once (digest and key
 * fetched once: OpenSSL looks up no name and copies no context per token),
 * and the raw JWS signature appended.
 *
 * Per key, at tk_minter_new:
 *   - the protected header {"alg":..,"kid":..,"typ":"at+jwt"}, base64url
 *     encoded, with the '.' that follows it;
 *   - the private key, taken from the signer's libjwt key item (the same
 *     key libjwt was given at load: the signer keeps one source of truth);
 *   - ES256 and RS256: an EVP_PKEY_CTX initialised for signing with SHA-256
 *     (RS256: PKCS#1 v1.5, OpenSSL's default padding), reused for every
 *     token: the minter hashes the signing input with its SHA-256 (fetched
 *     once) and signs the digest; EdDSA (which signs the message itself):
 *     an EVP_MD_CTX initialised for DigestSign, copied per token;
 *   - a self-test: a token minted the new way must verify with libjwt
 *     against the public JWK the JWKS publishes. Verification and JWK
 *     handling stay in libjwt / verify.c / jwk.c: nothing is written twice.
 *
 * Strings are checked to be UTF-8 (as jansson did: no overlong forms, no
 * surrogates, nothing past U+10FFFF) and escaped as jansson escapes them
 * ('"', '\\', control characters; '/' and non-ASCII as is).
 */
#include "internal.h"
#include "signer_int.h"
#include "tokend/crypto.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define JTI_RAW_LEN   16            /* 128 bits */
#define WHY_LEN       320
/* Claims JSON whose base64url alone would pass TK_TOKEN_MAX never makes a
 * token: the buffer stops there. */
#define CLAIMS_MAX    (TK_TOKEN_MAX / 4 * 3)
/* Largest signature: RSA 8192 bits. */
#define SIG_MAX       1024
#define HEAD_MAX      (TK_KID_MAX * 6 + 64)
/* At least tk_b64url_encoded_len(n). */
#define B64_MAX(n)    (((n) + 2) / 3 * 4)

#if TK_JTI_LEN != 22
#error "TK_JTI_LEN must be the base64url length of 16 bytes"
#endif

/* What a mint needs of one signing key, prepared once. */
struct mint_key {
	jwt_alg_t alg;
	/* ES256 and RS256: a sign context initialised once (key, SHA-256, RSA's
	 * PKCS#1 v1.5 padding by default), used for every token: the input is
	 * hashed in the minter's digest context, the digest signed here (no
	 * context is copied or freed per token). EdDSA signs the message itself
	 * (no prehash): a DigestSign template copied per token. */
	EVP_PKEY_CTX *sign;
	EVP_MD_CTX *tmpl;
	char head[B64_MAX(HEAD_MAX) + 2];  /* b64url(header) "." */
	size_t head_len;
};

/* The claims JSON being written: a fixed buffer, `over` once it is full. */
struct jbuf {
	char *p;
	size_t len, cap;
	int over;
};

struct tk_minter {
	const tk_signer *s;
	size_t n;
	struct mint_key *k;            /* one per key, same order as s->keys */
	EVP_MD_CTX *work;              /* EdDSA: a copy of k[i].tmpl per signature */
	EVP_MD_CTX *dig;               /* ES256, RS256: the SHA-256 of the signing input */
	EVP_MD *sha256;                /* fetched once */
	char claims[CLAIMS_MAX];       /* the claims JSON of the mint in progress */
	unsigned char sig[SIG_MAX];
	/* The token: b64url(header) "." b64url(claims) "." b64url(signature). */
	char tok[TK_TOKEN_MAX + B64_MAX(SIG_MAX) + 2];
	size_t used_tok, used_claims;  /* bytes of the last mint (tk_minter_forget) */
};

/* ------------------------------------------------------------------------ */
/* JSON writer                                                              */

static void jb_put(struct jbuf *b, const char *s, size_t n)
{
	if (b->over || n > b->cap - b->len) {
		b->over = 1;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

#define JB_LIT(b, lit) jb_put((b), (lit), sizeof(lit) - 1)

/* Length of the UTF-8 sequence at s (at most n bytes), or 0 when it is not
 * one jansson would accept. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* `s` as a JSON string. Returns -1 (nothing useful written) when `s` is not
 * valid UTF-8. */
static int jb_str(struct jbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), run = 0;

	JB_LIT(b, "\"");
	for (size_t i = 0; i < n;) {
		unsigned char ch = p[i];
		size_t l;

		if (ch >= 0x20 && ch != '"' && ch != '\\') {
			l = utf8_seq(p + i, n - i);
			if (l == 0)
				return -1;
			i += l;
			run += l;
			continue;
		}
		jb_put(b, (const char *)p + i - run, run);
		run = 0;
		switch (ch) {
		case '"':  JB_LIT(b, "\\\""); break;
		case '\\': JB_LIT(b, "\\\\"); break;
		case '\b': JB_LIT(b, "\\b"); break;
		case '\f': JB_LIT(b, "\\f"); break;
		case '\n': JB_LIT(b, "\\n"); break;
		case '\r': JB_LIT(b, "\\r"); break;
		case '\t': JB_LIT(b, "\\t"); break;
		default: {
			char u[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };
			jb_put(b, u, sizeof(u));
		}
		}
		i++;
	}
	jb_put(b, (const char *)p + n - run, run);
	JB_LIT(b, "\"");
	return 0;
}

static void jb_int(struct jbuf *b, int64_t v)
{
	char d[24];
	size_t i = sizeof(d);
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		d[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		d[--i] = '-';
	jb_put(b, d + i, sizeof(d) - i);
}

/* ,"name":"value" (name is one of ours: plain ASCII). -1 on bad UTF-8. */
static int member_str(struct jbuf *b, const char *name, const char *value)
{
	JB_LIT(b, ",\"");
	jb_put(b, name, strlen(name));
	JB_LIT(b, "\":");
	return jb_str(b, value);
}

static void member_int(struct jbuf *b, const char *name, int64_t value)
{
	JB_LIT(b, ",\"");
	jb_put(b, name, strlen(name));
	JB_LIT(b, "\":");
	jb_int(b, value);
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
	jb_put(data, buffer, size);
	return 0;
}

/* The members of the JSON object `json` whose names are not in `taken`
 * (NULL-terminated), in their order. -1 when `json` is not an object. */
static int members_merge(struct jbuf *b, const char *json, const char *const *taken)
{
	json_error_t jerr;
	json_t *o = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
	const char *name;
	json_t *v;
	int rc = -1;

	if (o == NULL || !json_is_object(o))
		goto out;
	json_object_foreach(o, name, v) {
		size_t t = 0;
		while (taken[t] != NULL && strcmp(taken[t], name) != 0)
			t++;
		if (taken[t] != NULL)
			continue;
		JB_LIT(b, ",");
		if (jb_str(b, name) != 0)
			goto out;
		JB_LIT(b, ":");
		if (json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
			goto out;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}

/* The claims of `c` with `jti` as one JSON object into b. Returns NULL, or
 * the name of the claim that could not be written. */
static const char *write_claims(struct jbuf *b, const tk_token_claims *c, const char *jti)
{
	const char *taken[16];
	size_t nt = 0;

	JB_LIT(b, "{\"iss\":");
	if (jb_str(b, c->iss) != 0)
		return "iss";
	if (member_str(b, "sub", c->sub) != 0)
		return "sub";
	if (c->aud_count == 1) {
		if (member_str(b, "aud", c->aud[0]) != 0)
			return "aud";
	} else {
		JB_LIT(b, ",\"aud\":[");
		for (size_t i = 0; i < c->aud_count; i++) {
			if (i > 0)
				JB_LIT(b, ",");
			if (jb_str(b, c->aud[i]) != 0)
				return "aud";
		}
		JB_LIT(b, "]");
	}
	if (member_str(b, "client_id", c->client_id) != 0)
		return "client_id";
	taken[nt++] = "iss", taken[nt++] = "sub", taken[nt++] = "aud";
	taken[nt++] = "client_id";
	if (c->scope != NULL && c->scope[0] != '\0') {
		if (member_str(b, "scope", c->scope) != 0)
			return "scope";
		taken[nt++] = "scope";
	}
	if (member_str(b, "acct", c->acct) != 0)
		return "acct";
	member_int(b, "iat", c->iat);
	member_int(b, "nbf", c->iat);
	member_int(b, "exp", c->exp);
	if (member_str(b, "jti", jti) != 0)
		return "jti";
	taken[nt++] = "acct", taken[nt++] = "iat", taken[nt++] = "nbf";
	taken[nt++] = "exp", taken[nt++] = "jti";
	if (c->env != NULL) {
		if (member_str(b, "env", c->env) != 0)
			return "env";
		taken[nt++] = "env";
	}
	if (c->origin != NULL) {
		if (member_str(b, "origin", c->origin) != 0)
			return "origin";
		taken[nt++] = "origin";
	}
	if (c->status_uri != NULL && c->status_uri[0] != '\0') {
		JB_LIT(b, ",\"status\":{\"status_list\":{\"idx\":");
		jb_int(b, c->status_idx);
		JB_LIT(b, ",\"uri\":");
		if (jb_str(b, c->status_uri) != 0)
			return "status";
		JB_LIT(b, "}}");
		taken[nt++] = "status";
	}
	taken[nt] = NULL;
	if (c->extra != NULL && c->extra[0] != '\0' && members_merge(b, c->extra, taken) != 0)
		return "(custom claims)";
	JB_LIT(b, "}");
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Signatures                                                               */

/* One DER INTEGER of an ECDSA-Sig-Value as 32 big-endian bytes. */
static int der_int32(const unsigned char **p, const unsigned char *end, unsigned char out[32])
{
	size_t len;

	if (end - *p < 2 || (*p)[0] != 0x02)
		return -1;
	len = (*p)[1];
	*p += 2;
	if (len == 0 || len > 33 || (size_t)(end - *p) < len)
		return -1;
	while (len > 0 && **p == 0)
		(*p)++, len--;
	if (len > 32)
		return -1;
	memset(out, 0, 32 - len);
	memcpy(out + 32 - len, *p, len);
	*p += len;
	return 0;
}

/* DER ECDSA-Sig-Value (P-256) -> JWS r||s (RFC 7518 3.4), in place. Returns
 * 64, or 0 when the DER is not what OpenSSL makes. */
static size_t ecdsa_raw(unsigned char *sig, size_t len)
{
	unsigned char raw[64];
	const unsigned char *p = sig, *end = sig + len;

	if (len < 8 || p[0] != 0x30 || p[1] != len - 2)
		return 0;
	p += 2;
	if (der_int32(&p, end, raw) != 0 || der_int32(&p, end, raw + 32) != 0 || p != end)
		return 0;
	memcpy(sig, raw, sizeof(raw));
	return sizeof(raw);
}

/* ------------------------------------------------------------------------ */
/* Minter                                                                   */

/* The private key libjwt holds for `k` (its PEM, parsed once). */
static EVP_PKEY *key_of(const struct signing_key *k)
{
	const char *pem = jwks_item_pem(k->item);
	EVP_PKEY *pk = NULL;
	BIO *bio;

	if (pem == NULL || (bio = BIO_new_mem_buf(pem, -1)) == NULL)
		return NULL;
	pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	return pk;
}

static int prepare_key(struct mint_key *mk, const struct signing_key *k, const EVP_MD *sha256,
                       char *why, size_t wl)
{
	char head[HEAD_MAX];
	struct jbuf hb = { head, 0, sizeof(head), 0 };
	const char *type = k->alg == JWT_ALG_ES256 ? "EC" : k->alg == JWT_ALG_EDDSA ? "ED25519" : "RSA";
	EVP_PKEY *pk = NULL;
	int rc = -1;

	mk->alg = k->alg;
	JB_LIT(&hb, "{\"alg\":");
	jb_str(&hb, k->alg_name);
	JB_LIT(&hb, ",\"kid\":");
	if (jb_str(&hb, k->kid) != 0 || (JB_LIT(&hb, ",\"typ\":\"at+jwt\"}"), hb.over)) {
		tk_seterr(why, wl, "cannot encode the token header");
		goto out;
	}
	mk->head_len = tk_b64url_encode(head, hb.len, mk->head);
	mk->head[mk->head_len++] = '.';
	mk->head[mk->head_len] = '\0';

	pk = key_of(k);
	if (pk == NULL || !EVP_PKEY_is_a(pk, type) ||
	    (k->alg == JWT_ALG_ES256 && EVP_PKEY_get_bits(pk) != 256) ||
	    EVP_PKEY_get_size(pk) > SIG_MAX) {
		tk_seterr(why, wl, "cannot take the private key from libjwt");
		goto out;
	}
	if (k->alg == JWT_ALG_EDDSA) {
		mk->tmpl = EVP_MD_CTX_new();
		if (mk->tmpl == NULL || EVP_DigestSignInit_ex(mk->tmpl, NULL, NULL, NULL, NULL, pk, NULL) != 1)
			goto bad;
	} else {
		mk->sign = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
		if (mk->sign == NULL || EVP_PKEY_sign_init(mk->sign) != 1 ||
		    EVP_PKEY_CTX_set_signature_md(mk->sign, sha256) != 1)
			goto bad;
	}
	rc = 0;
	goto out;
bad:
	tk_seterr(why, wl, "cannot prepare the signature: %s",
	          tk_ossl_reason(head, sizeof(head), "OpenSSL error"));
out:
	EVP_PKEY_free(pk);             /* the context holds its own reference */
	ERR_clear_error();
	return rc;
}

/* Sign `len` bytes of `in` with key `mk` into sig (*siglen: its room in,
 * the signature's length out; ES256 as JWS r||s). 0, or -1 (OpenSSL's error
 * queue says why). */
static int sign_input(tk_minter *m, const struct mint_key *mk, const unsigned char *in, size_t len,
                      unsigned char *sig, size_t *siglen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (mk->sign == NULL)
		return EVP_MD_CTX_copy_ex(m->work, mk->tmpl) == 1 &&
		       EVP_DigestSign(m->work, sig, siglen, in, len) == 1 ? 0 : -1;
	if (EVP_DigestInit_ex2(m->dig, m->sha256, NULL) != 1 || EVP_DigestUpdate(m->dig, in, len) != 1 ||
	    EVP_DigestFinal_ex(m->dig, md, &mdlen) != 1 ||
	    EVP_PKEY_sign(mk->sign, sig, siglen, md, mdlen) != 1)
		return -1;
	if (mk->alg == JWT_ALG_ES256 && (*siglen = ecdsa_raw(sig, *siglen)) == 0)
		return -1;
	return 0;
}

static const char *mint_into(tk_minter *m, size_t idx, const tk_token_claims *c,
                             const char *jti, char *err, size_t errlen);

/* A token minted the new way verifies with libjwt against the public JWK of
 * the JWKS: proves the prepared key is the published one. */
static int selftest(tk_minter *m, size_t idx, char *why, size_t wl)
{
	const struct signing_key *k = &m->s->keys[idx];
	const char *aud[] = { "urn:tokend:selftest" };
	tk_token_claims c = { .iss = "urn:tokend:selftest", .sub = "selftest", .aud = aud,
	                      .aud_count = 1, .client_id = "selftest", .acct = "selftest",
	                      .iat = 1, .exp = 4102444800 };
	jwk_set_t *pub = jwks_create(k->pub_json);
	const jwk_item_t *item = NULL;
	jwt_checker_t *ch = NULL;
	const char *tok;
	int rc = -1;

	tok = mint_into(m, idx, &c, "AAAAAAAAAAAAAAAAAAAAAA", why, wl);
	if (tok == NULL)
		goto out;
	if (pub == NULL || jwks_error_any(pub) != 0 || (item = jwks_item_get(pub, 0)) == NULL ||
	    (ch = jwt_checker_new()) == NULL || jwt_checker_setkey(ch, k->alg, item) != 0 ||
	    jwt_checker_verify(ch, tok) != 0) {
		tk_seterr(why, wl, "self-test: the published key does not verify a minted token (%s)",
		          ch ? jwt_checker_error_msg(ch) : "out of memory");
		goto out;
	}
	rc = 0;
out:
	jwt_checker_free(ch);
	jwks_free(pub);
	ERR_clear_error();
	return rc;
}

tk_minter *tk_minter_new(const tk_signer *s, char *err, size_t errlen)
{
	char why[WHY_LEN] = "";
	tk_minter *m;

	if (s == NULL || s->n == 0) {
		tk_seterr(err, errlen, "no signing key loaded");
		return NULL;
	}
	atomic_store(&s->st->frozen, true);
	m = calloc(1, sizeof(*m));
	if (m == NULL || (m->k = calloc(s->n, sizeof(*m->k))) == NULL ||
	    (m->work = EVP_MD_CTX_new()) == NULL || (m->dig = EVP_MD_CTX_new()) == NULL ||
	    (m->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
		tk_minter_free(m);
		tk_seterr(err, errlen, "out of memory, or no SHA-256 in OpenSSL");
		ERR_clear_error();
		return NULL;
	}
	m->s = s;
	m->n = s->n;
	for (size_t i = 0; i < s->n; i++) {
		if (prepare_key(&m->k[i], &s->keys[i], m->sha256, why, sizeof(why)) != 0 ||
		    selftest(m, i, why, sizeof(why)) != 0) {
			tk_seterr(err, errlen, "key %s: %s", s->keys[i].kid, why);
			tk_minter_free(m);
			return NULL;
		}
	}
	return m;
}

void tk_minter_free(tk_minter *m)
{
	if (m == NULL)
		return;
	if (m->k != NULL)
		for (size_t i = 0; i < m->n; i++) {
			EVP_MD_CTX_free(m->k[i].tmpl);
			EVP_PKEY_CTX_free(m->k[i].sign);
		}
	EVP_MD_CTX_free(m->work);
	EVP_MD_CTX_free(m->dig);
	EVP_MD_free(m->sha256);
	free(m->k);
	/* The last token and its claims: no bearer token left in freed memory. */
	tk_wipe(m->tok, sizeof(m->tok));
	tk_wipe(m->claims, sizeof(m->claims));
	free(m);
}

void tk_minter_forget(tk_minter *m)
{
	if (m == NULL)
		return;
	tk_wipe(m->tok, m->used_tok < sizeof(m->tok) ? m->used_tok : sizeof(m->tok));
	tk_wipe(m->claims, m->used_claims < sizeof(m->claims) ? m->used_claims : sizeof(m->claims));
	m->used_tok = m->used_claims = 0;
}

static const char *claims_problem(const tk_token_claims *c)
{
	if (c->iss == NULL || c->iss[0] == '\0')
		return "iss is required";
	if (c->sub == NULL || c->sub[0] == '\0')
		return "sub is required";
	if (c->client_id == NULL || c->client_id[0] == '\0')
		return "client_id is required";
	if (c->acct == NULL || c->acct[0] == '\0')
		return "acct (account id) is required";
	if (c->aud == NULL || c->aud_count == 0)
		return "at least one audience is required";
	if (c->aud_count > TK_AUD_MAX)
		return "too many audiences";
	for (size_t i = 0; i < c->aud_count; i++)
		if (c->aud[i] == NULL || c->aud[i][0] == '\0')
			return "an audience is empty";
	if (c->iat <= 0)
		return "iat must be positive";
	if (c->exp <= c->iat)
		return "exp must be after iat";
	if (c->status_uri != NULL && c->status_uri[0] != '\0' && c->status_idx < 0)
		return "status_idx must not be negative";
	return NULL;
}

/* The token for claims `c` and `jti`, signed with key idx, in m->tok. */
static const char *mint_into(tk_minter *m, size_t idx, const tk_token_claims *c,
                             const char *jti, char *err, size_t errlen)
{
	const struct mint_key *mk = &m->k[idx];
	struct jbuf b = { m->claims, 0, sizeof(m->claims), 0 };
	const char *bad;
	size_t len, siglen = sizeof(m->sig);
	char why[160];

	bad = write_claims(&b, c, jti);
	if (bad != NULL && !b.over) {
		tk_seterr(err, errlen, "cannot mint token: cannot set claim %s (not valid UTF-8?)", bad);
		return NULL;
	}
	if (b.over || mk->head_len + tk_b64url_encoded_len(b.len) > TK_TOKEN_MAX) {
		tk_seterr(err, errlen, "the token would be longer than %d bytes", TK_TOKEN_MAX);
		return NULL;
	}
	memcpy(m->tok, mk->head, mk->head_len);
	len = mk->head_len + tk_b64url_encode(m->claims, b.len, m->tok + mk->head_len);
	if (sign_input(m, mk, (const unsigned char *)m->tok, len, m->sig, &siglen) != 0) {
		tk_seterr(err, errlen, "cannot mint token: signing failed: %s",
		          tk_ossl_reason(why, sizeof(why), "OpenSSL error"));
		return NULL;
	}
	if (len + 1 + tk_b64url_encoded_len(siglen) > TK_TOKEN_MAX) {
		tk_seterr(err, errlen, "the token would be longer than %d bytes", TK_TOKEN_MAX);
		return NULL;
	}
	m->tok[len++] = '.';
	m->used_tok = len + tk_b64url_encode(m->sig, siglen, m->tok + len) + 1;
	m->used_claims = b.len;
	return m->tok;
}

const char *tk_minter_mint_ref(tk_minter *m, const tk_token_claims *c,
                               char jti_out[TK_JTI_LEN + 1], size_t *len_out, char *err,
                               size_t errlen)
{
	unsigned char raw[JTI_RAW_LEN];
	char jti[TK_JTI_LEN + 1];
	const char *problem, *tok;
	size_t idx;

	if (jti_out != NULL)
		jti_out[0] = '\0';
	if (m == NULL || c == NULL) {
		tk_seterr(err, errlen, "no minter or claims given");
		return NULL;
	}
	problem = claims_problem(c);
	if (problem != NULL) {
		tk_seterr(err, errlen, "invalid claims: %s", problem);
		return NULL;
	}
	idx = atomic_load(&m->s->st->active);
	if (idx >= m->n) {
		tk_seterr(err, errlen, "active signing key is not available to this minter");
		return NULL;
	}
	if (tk_random_fast(raw, sizeof(raw)) != 0) {
		tk_seterr(err, errlen, "CSPRNG failure: cannot make a jti, no token issued");
		return NULL;
	}
	tk_b64url_encode(raw, sizeof(raw), jti);
	tk_wipe(raw, sizeof(raw));

	tok = mint_into(m, idx, c, jti, err, errlen);
	if (tok == NULL)
		return NULL;
	if (jti_out != NULL)
		memcpy(jti_out, jti, sizeof(jti));
	if (len_out != NULL)
		*len_out = strlen(tok);
	return tok;
}

char *tk_minter_mint(tk_minter *m, const tk_token_claims *c, char jti_out[TK_JTI_LEN + 1],
                     char *err, size_t errlen)
{
	size_t len;
	const char *tok = tk_minter_mint_ref(m, c, jti_out, &len, err, errlen);
	char *copy;

	if (tok == NULL)
		return NULL;
	copy = malloc(len + 1);
	if (copy == NULL) {
		if (jti_out != NULL)
			jti_out[0] = '\0';
		tk_seterr(err, errlen, "out of memory");
		return NULL;
	}
	memcpy(copy, tok, len + 1);
	return copy;
}

/* A document other than an access token (a Token Status List token): the
 * header with `typ`, the payload exactly `claims_json` (checked to be one JSON
 * object), signed with the active key's prepared context. Not the hot path:
 * its buffers are allocated for the document's size. */
char *tk_minter_sign(tk_minter *m, const char *typ, const char *claims_json, size_t max_len,
                     char *err, size_t errlen)
{
	char head[HEAD_MAX];
	struct jbuf hb = { head, 0, sizeof(head), 0 };
	unsigned char *sig = NULL;
	char *tok = NULL, why[160];
	size_t idx, n, len, siglen;
	json_error_t jerr;
	json_t *o;

	if (m == NULL || typ == NULL || typ[0] == '\0' || claims_json == NULL) {
		tk_seterr(err, errlen, "no minter, typ or claims given");
		return NULL;
	}
	o = json_loads(claims_json, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(o)) {
		json_decref(o);
		tk_seterr(err, errlen, "claims are not a JSON object");
		return NULL;
	}
	json_decref(o);
	idx = atomic_load(&m->s->st->active);
	if (idx >= m->n) {
		tk_seterr(err, errlen, "active signing key is not available to this minter");
		return NULL;
	}
	const struct signing_key *k = &m->s->keys[idx];
	const struct mint_key *mk = &m->k[idx];
	JB_LIT(&hb, "{\"alg\":");
	jb_str(&hb, k->alg_name);
	JB_LIT(&hb, ",\"kid\":");
	jb_str(&hb, k->kid);
	JB_LIT(&hb, ",\"typ\":");
	if (jb_str(&hb, typ) != 0 || (JB_LIT(&hb, "}"), hb.over)) {
		tk_seterr(err, errlen, "cannot encode the header (typ not valid UTF-8?)");
		return NULL;
	}
	n = strlen(claims_json);
	len = tk_b64url_encoded_len(hb.len) + 1 + tk_b64url_encoded_len(n);
	tok = malloc(len + 2 + B64_MAX(SIG_MAX) + 1);
	sig = malloc(SIG_MAX);
	if (tok == NULL || sig == NULL) {
		tk_seterr(err, errlen, "out of memory");
		goto fail;
	}
	len = tk_b64url_encode(head, hb.len, tok);
	tok[len++] = '.';
	len += tk_b64url_encode(claims_json, n, tok + len);
	siglen = SIG_MAX;
	if (sign_input(m, mk, (const unsigned char *)tok, len, sig, &siglen) != 0) {
		tk_seterr(err, errlen, "cannot sign: %s", tk_ossl_reason(why, sizeof(why), "OpenSSL error"));
		goto fail;
	}
	tok[len++] = '.';
	len += tk_b64url_encode(sig, siglen, tok + len);
	tok[len] = '\0';
	if (max_len > 0 && len > max_len) {
		tk_seterr(err, errlen, "the signed token would be longer than %zu bytes", max_len);
		goto fail;
	}
	free(sig);
	return tok;
fail:
	free(sig);
	free(tok);
	ERR_clear_error();
	return NULL;
}
