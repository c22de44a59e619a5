/*
 * signer.c - signing keys (JWK or PEM files -> canonical JWK -> libjwt) and
 * RFC 9068 access-token minting with per-thread libjwt builders.
 *
 * Load path for one file:
 *   read (regular file, mode & 077 == 0, bounded size)
 *   -> EVP_PKEY (PEM: OpenSSL decoder with a passphrase callback that always
 *      fails; JWK: our own strict parse, EVP_PKEY_fromdata)
 *   -> policy (P-256 / Ed25519 / RSA 2048..8192) and EVP_PKEY_check
 *   -> canonical JWK members exported from the EVP_PKEY (x/y/d padded)
 *   -> kid (from the JWK, else RFC 7638 thumbprint), duplicate check
 *   -> private JWK JSON handed to libjwt once (jwks_load), then wiped
 *   -> self-test: sign with libjwt, verify against the public JWK we publish.
 *
 * Private material passes through our buffers only; each is wiped with
 * tk_wipe before it is freed. (libjwt keeps its own parsed copy of the JWK for
 * the lifetime of the set; that is outside our control.)
 */
#include "tokend/signer.h"
#include "tokend/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>

#define KEY_FILE_MAX  (64 * 1024)   /* a PEM of RSA-8192 is ~6.5 KiB */
#define RSA_MIN_BITS  2048
#define RSA_MAX_BITS  8192
#define P256_LEN      32            /* P-256 coordinate and scalar length */
#define ED25519_LEN   32
#define RSA_MAX_BYTES (RSA_MAX_BITS / 8)
#define JTI_RAW_LEN   16            /* 128 bits */
#define WHY_LEN       320

#if TK_JTI_LEN != 22
#error "TK_JTI_LEN must be the base64url length of 16 bytes"
#endif

enum kty { KTY_NONE = 0, KTY_EC, KTY_OKP, KTY_RSA };

/* Names of the RSA private members, JWK and OpenSSL, in JWK order. */
#define RSA_PRIV_COUNT 6
static const char *const RSA_PRIV_JWK[RSA_PRIV_COUNT] = { "d", "p", "q", "dp", "dq", "qi" };
static const char *const RSA_PRIV_OSSL[RSA_PRIV_COUNT] = {
	OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
	OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
	OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};

/* The base64url JWK members of one key. priv[] is wiped on release. */
struct jwk_parts {
	enum kty kty;
	const char *alg_name;          /* "ES256", "EdDSA", "RS256" */
	jwt_alg_t alg;
	char *x, *y;                   /* EC; OKP uses x only */
	char *n, *e;                   /* RSA */
	char *priv[RSA_PRIV_COUNT];    /* EC/OKP: priv[0] = d; RSA: d p q dp dq qi */
};

struct tk_key {
	char *kid;
	const char *alg_name;          /* static string */
	jwt_alg_t alg;
	char *pub_json;                /* public JWK as published */
	const jwk_item_t *item;        /* the private key, owned by tk_signer.set */
};

/* The part of a signer that changes after it is built. Held by pointer so
 * that functions taking a const tk_signer may still update it. */
struct signer_state {
	atomic_size_t active;
	atomic_bool frozen;
};

struct tk_signer {
	jwk_set_t *set;
	struct tk_key keys[TK_SIGNER_MAX_KEYS];
	size_t n;
	struct signer_state *st;
};

struct tk_minter {
	const tk_signer *s;
	size_t n;
	jwt_builder_t **b;             /* one per key, same order as s->keys */
	/* State of the mint in progress, read by mint_cb. */
	const tk_token_claims *cur;
	const char *jti;
	char cb_err[160];
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

/* Reason of the most recent OpenSSL error (or `fallback`); clears the queue
 * so that nothing is left behind for other code. */
static const char *ossl_reason(char *buf, size_t len, const char *fallback)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	snprintf(buf, len, "%s", r ? r : fallback);
	ERR_clear_error();
	return buf;
}

static void secret_free(char *s)
{
	if (s != NULL) {
		tk_wipe(s, strlen(s));
		free(s);
	}
}

/* Wipe the text of a jansson string in place (before json_decref). */
static void json_string_wipe(json_t *v)
{
	if (v != NULL && json_is_string(v)) {
		char *p = (char *)(uintptr_t)json_string_value(v);
		tk_wipe(p, json_string_length(v));
	}
}

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
	if (n > RSA_MAX_BYTES + 1)
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

static void parts_release(struct jwk_parts *p)
{
	free(p->x);
	free(p->y);
	free(p->n);
	free(p->e);
	for (size_t i = 0; i < RSA_PRIV_COUNT; i++)
		secret_free(p->priv[i]);
	memset(p, 0, sizeof(*p));
}

static int is_b64url(const char *s)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

/* A kid may be any printable ASCII except '"' and '\' (so it never needs
 * JSON escaping), 1..TK_KID_MAX characters. */
static int kid_ok(const char *kid)
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

/* ------------------------------------------------------------------------ */
/* JSON objects of JWK members (values never need escaping: they are        */
/* base64url, fixed names, or kids checked by kid_ok)                       */

struct member {
	const char *name;
	const char *value;
};

/* Build {"name":"value",...} in a single allocation (no realloc, so no
 * stray copies of private values are left in freed memory). */
static char *json_of(const struct member *m, size_t count)
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
static char *parts_json(const struct jwk_parts *p, const char *kid, int with_private)
{
	struct member m[16];
	size_t k = 0;

	switch (p->kty) {
	case KTY_EC:
		m[k++] = (struct member){ "kty", "EC" };
		m[k++] = (struct member){ "crv", "P-256" };
		m[k++] = (struct member){ "x", p->x };
		m[k++] = (struct member){ "y", p->y };
		if (with_private)
			m[k++] = (struct member){ "d", p->priv[0] };
		break;
	case KTY_OKP:
		m[k++] = (struct member){ "kty", "OKP" };
		m[k++] = (struct member){ "crv", "Ed25519" };
		m[k++] = (struct member){ "x", p->x };
		if (with_private)
			m[k++] = (struct member){ "d", p->priv[0] };
		break;
	case KTY_RSA:
		m[k++] = (struct member){ "kty", "RSA" };
		m[k++] = (struct member){ "n", p->n };
		m[k++] = (struct member){ "e", p->e };
		if (with_private)
			for (size_t i = 0; i < RSA_PRIV_COUNT; i++)
				m[k++] = (struct member){ RSA_PRIV_JWK[i], p->priv[i] };
		break;
	default:
		return NULL;
	}
	m[k++] = (struct member){ "kid", kid };
	m[k++] = (struct member){ "alg", p->alg_name };
	m[k++] = (struct member){ "use", "sig" };
	return json_of(m, k);
}

/* ------------------------------------------------------------------------ */
/* RFC 7638 thumbprints                                                     */

/* Hash the canonical form: the required public members in lexicographic
 * order, no whitespace. Values must already be checked to need no escaping. */
static int thumbprint_of(const char *kty, const char *crv, const char *x, const char *y,
                         const char *n, const char *e, char out[TK_THUMBPRINT_LEN + 1])
{
	struct member m[4];
	size_t k = 0;
	unsigned char md[32];
	unsigned int mdlen = 0;
	char *canon;
	int ok;

	if (strcmp(kty, "EC") == 0) {
		m[k++] = (struct member){ "crv", crv };
		m[k++] = (struct member){ "kty", kty };
		m[k++] = (struct member){ "x", x };
		m[k++] = (struct member){ "y", y };
	} else if (strcmp(kty, "RSA") == 0) {
		m[k++] = (struct member){ "e", e };
		m[k++] = (struct member){ "kty", kty };
		m[k++] = (struct member){ "n", n };
	} else if (strcmp(kty, "OKP") == 0) {
		m[k++] = (struct member){ "crv", crv };
		m[k++] = (struct member){ "kty", kty };
		m[k++] = (struct member){ "x", x };
	} else {
		return -1;
	}
	canon = json_of(m, k);
	if (canon == NULL)
		return -1;
	ok = EVP_Digest(canon, strlen(canon), md, &mdlen, EVP_sha256(), NULL) == 1 &&
	     mdlen == sizeof(md);
	free(canon);
	ERR_clear_error();
	if (!ok)
		return -1;
	tk_b64url_encode(md, sizeof(md), out);
	return 0;
}

static int parts_thumbprint(const struct jwk_parts *p, char out[TK_THUMBPRINT_LEN + 1])
{
	switch (p->kty) {
	case KTY_EC:
		return thumbprint_of("EC", "P-256", p->x, p->y, NULL, NULL, out);
	case KTY_OKP:
		return thumbprint_of("OKP", "Ed25519", p->x, NULL, NULL, NULL, out);
	case KTY_RSA:
		return thumbprint_of("RSA", NULL, NULL, NULL, p->n, p->e, out);
	default:
		return -1;
	}
}

static int crv_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '-'))
			return 0;
	return 1;
}

int tk_jwk_thumbprint(const char *jwk_json, size_t len, char out[TK_THUMBPRINT_LEN + 1],
                      char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *o;
	const char *kty, *need[3] = { NULL, NULL, NULL };
	const char *val[3] = { NULL, NULL, NULL };
	const char *crv = NULL;
	int rc = -1;

	if (out != NULL)
		out[0] = '\0';
	if (jwk_json == NULL || out == NULL) {
		seterr(err, errlen, "no JWK given");
		return -1;
	}
	o = json_loadb(jwk_json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL || !json_is_object(o)) {
		seterr(err, errlen, "JWK is not a JSON object%s%s", o ? "" : ": ",
		       o ? "" : jerr.text);
		goto done;
	}
	kty = json_string_value(json_object_get(o, "kty"));
	if (kty == NULL) {
		seterr(err, errlen, "JWK has no string \"kty\"");
		goto done;
	}
	if (strcmp(kty, "EC") == 0) {
		need[0] = "x";
		need[1] = "y";
	} else if (strcmp(kty, "OKP") == 0) {
		need[0] = "x";
	} else if (strcmp(kty, "RSA") == 0) {
		need[0] = "n";
		need[1] = "e";
	} else {
		seterr(err, errlen, "JWK kty \"%.16s\" is not EC, OKP or RSA", kty);
		goto done;
	}
	if (strcmp(kty, "RSA") != 0) {
		crv = json_string_value(json_object_get(o, "crv"));
		if (!crv_ok(crv)) {
			seterr(err, errlen, "JWK member \"crv\" is missing or malformed");
			goto done;
		}
	}
	for (size_t i = 0; i < 3 && need[i]; i++) {
		val[i] = json_string_value(json_object_get(o, need[i]));
		if (!is_b64url(val[i])) {
			seterr(err, errlen, "JWK member \"%s\" is missing or not base64url", need[i]);
			goto done;
		}
	}
	if (strcmp(kty, "EC") == 0)
		rc = thumbprint_of(kty, crv, val[0], val[1], NULL, NULL, out);
	else if (strcmp(kty, "OKP") == 0)
		rc = thumbprint_of(kty, crv, val[0], NULL, NULL, NULL, out);
	else
		rc = thumbprint_of(kty, NULL, NULL, NULL, val[0], val[1], out);
	if (rc != 0)
		seterr(err, errlen, "SHA-256 failed");
done:
	json_decref(o);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* EVP_PKEY -> canonical JWK members, with the key policy                   */

static int export_pkey(const EVP_PKEY *pk, struct jwk_parts *p, char *why, size_t wl)
{
	char name[64];
	unsigned char raw[ED25519_LEN];
	size_t rawlen = 0;
	int bits = EVP_PKEY_get_bits(pk);

	memset(p, 0, sizeof(*p));
	if (EVP_PKEY_is_a(pk, "EC")) {
		if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, name,
		                                   sizeof(name), NULL) != 1) {
			ERR_clear_error();
			seterr(why, wl, "EC key without a named curve is not supported (only P-256)");
			return -1;
		}
		if (strcmp(name, "prime256v1") != 0 && strcmp(name, "P-256") != 0) {
			seterr(why, wl, "EC curve %s is not supported (only P-256, for ES256)", name);
			return -1;
		}
		p->kty = KTY_EC;
		p->alg_name = "ES256";
		p->alg = JWT_ALG_ES256;
		p->x = param_b64(pk, OSSL_PKEY_PARAM_EC_PUB_X, P256_LEN);
		p->y = param_b64(pk, OSSL_PKEY_PARAM_EC_PUB_Y, P256_LEN);
		p->priv[0] = param_b64(pk, OSSL_PKEY_PARAM_PRIV_KEY, P256_LEN);
		if (!p->x || !p->y || !p->priv[0])
			goto export_failed;
	} else if (EVP_PKEY_is_a(pk, "ED25519")) {
		p->kty = KTY_OKP;
		p->alg_name = "EdDSA";
		p->alg = JWT_ALG_EDDSA;
		if (EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, raw, sizeof(raw),
		                                    &rawlen) != 1 || rawlen != ED25519_LEN)
			goto export_failed;
		p->x = b64_alloc(raw, rawlen);
		if (EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, raw, sizeof(raw),
		                                    &rawlen) != 1 || rawlen != ED25519_LEN) {
			tk_wipe(raw, sizeof(raw));
			goto export_failed;
		}
		p->priv[0] = b64_alloc(raw, rawlen);
		tk_wipe(raw, sizeof(raw));
		if (!p->x || !p->priv[0])
			goto export_failed;
	} else if (EVP_PKEY_is_a(pk, "RSA")) {
		BIGNUM *third = NULL;
		if (bits < RSA_MIN_BITS) {
			seterr(why, wl, "RSA key has %d bits; at least %d are required", bits,
			       RSA_MIN_BITS);
			return -1;
		}
		if (bits > RSA_MAX_BITS) {
			seterr(why, wl, "RSA key has %d bits; at most %d are supported", bits,
			       RSA_MAX_BITS);
			return -1;
		}
		if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_FACTOR3, &third) == 1) {
			BN_clear_free(third);
			seterr(why, wl, "multi-prime RSA keys are not supported");
			return -1;
		}
		ERR_clear_error();
		p->kty = KTY_RSA;
		p->alg_name = "RS256";
		p->alg = JWT_ALG_RS256;
		p->n = param_b64(pk, OSSL_PKEY_PARAM_RSA_N, 0);
		p->e = param_b64(pk, OSSL_PKEY_PARAM_RSA_E, 0);
		if (!p->n || !p->e)
			goto export_failed;
		for (size_t i = 0; i < RSA_PRIV_COUNT; i++) {
			p->priv[i] = param_b64(pk, RSA_PRIV_OSSL[i], 0);
			if (p->priv[i] == NULL) {
				parts_release(p);
				ERR_clear_error();
				seterr(why, wl, "RSA private key lacks its CRT parameters "
				       "(p, q, dp, dq, qi)");
				return -1;
			}
		}
	} else {
		const char *t = EVP_PKEY_get0_type_name(pk);
		seterr(why, wl, "%s keys are not supported (use EC P-256, Ed25519 or RSA >= 2048)",
		       t ? t : "this type of");
		return -1;
	}
	return 0;

export_failed:
	parts_release(p);
	ERR_clear_error();
	seterr(why, wl, "cannot read the key's parameters (no private key?)");
	return -1;
}

/* Full OpenSSL validation: public part well formed (point on the curve),
 * private part in range, and the two belonging together. */
static int check_pkey(EVP_PKEY *pk, char *why, size_t wl)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	int ok = ctx != NULL && EVP_PKEY_check(ctx) == 1;
	char r[128];

	EVP_PKEY_CTX_free(ctx);
	if (!ok) {
		seterr(why, wl, "key failed validation (%s): its public and private parts "
		       "do not match or it is malformed",
		       ossl_reason(r, sizeof(r), "check failed"));
		return -1;
	}
	ERR_clear_error();
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Reading key files                                                        */

/* Read `path` into a NUL-terminated malloc'd buffer (caller wipes + frees). */
static char *read_key_file(const char *path, size_t *len_out, char *why, size_t wl)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	char eb[128];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		seterr(why, wl, "cannot open: %s", strerror_r(errno, eb, sizeof(eb)));
		return NULL;
	}
	if (fstat(fd, &st) != 0) {
		seterr(why, wl, "cannot stat: %s", strerror_r(errno, eb, sizeof(eb)));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		seterr(why, wl, "not a regular file");
		goto fail;
	}
	if (st.st_mode & 077) {
		seterr(why, wl, "private key file is readable by others (chmod 600)");
		goto fail;
	}
	if (st.st_size <= 0 || st.st_size > KEY_FILE_MAX) {
		seterr(why, wl, st.st_size <= 0 ? "file is empty" : "file is too large for a key");
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		seterr(why, wl, "out of memory");
		goto fail;
	}
	while (len < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			seterr(why, wl, "cannot read: %s", strerror_r(errno, eb, sizeof(eb)));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	if (len == 0 || strlen(buf) != len) {
		seterr(why, wl, len == 0 ? "file is empty" : "file contains NUL bytes");
		goto fail;
	}
	close(fd);
	*len_out = len;
	return buf;
fail:
	if (buf != NULL) {
		tk_wipe(buf, len);
		free(buf);
	}
	close(fd);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* PEM                                                                      */

/* Passphrase callback: never prompt, record that a passphrase was wanted. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	*(int *)u = 1;
	return -1;
}

static EVP_PKEY *load_pem(const char *buf, size_t len, char *why, size_t wl)
{
	int asked = 0;
	char r[128];
	BIO *bio;
	EVP_PKEY *pk;

	if (len > (size_t)KEY_FILE_MAX)
		return NULL;
	bio = BIO_new_mem_buf(buf, (int)len);
	if (bio == NULL) {
		seterr(why, wl, "out of memory");
		return NULL;
	}
	pk = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &asked);
	BIO_free(bio);
	if (pk == NULL) {
		if (asked || strstr(buf, "ENCRYPTED") != NULL) {
			ERR_clear_error();
			seterr(why, wl, "private key is encrypted (passphrase-protected keys are not "
			       "supported; decrypt it with: openssl pkey -in FILE -out NEWFILE)");
		} else {
			seterr(why, wl, "no usable PEM private key: a certificate or public key is "
			       "not enough (OpenSSL: %s)",
			       ossl_reason(r, sizeof(r), "unrecognised content"));
		}
		return NULL;
	}
	ERR_clear_error();
	return pk;
}

/* ------------------------------------------------------------------------ */
/* JWK                                                                      */

static int host_little_endian(void)
{
	const uint16_t one = 1;
	unsigned char c;

	memcpy(&c, &one, 1);
	return c == 1;
}

/* Copy big-endian `be` into `ne` in native byte order (OSSL_PARAM BN form). */
static void to_native(const unsigned char *be, size_t n, unsigned char *ne)
{
	if (host_little_endian())
		for (size_t i = 0; i < n; i++)
			ne[i] = be[n - 1 - i];
	else
		memcpy(ne, be, n);
}

/* A decoded base64url JWK member. */
struct bin {
	unsigned char *p;
	size_t len;
};

static void bin_release(struct bin *b)
{
	if (b->p != NULL) {
		tk_wipe(b->p, b->len);
		free(b->p);
	}
	b->p = NULL;
	b->len = 0;
}

/* Decode member `name` of `o`. `exact` > 0 requires that many bytes. */
static int jwk_member(json_t *o, const char *name, size_t exact, size_t max, struct bin *out,
                      char *why, size_t wl)
{
	json_t *v = json_object_get(o, name);
	const char *s;
	size_t slen;
	long n;

	out->p = NULL;
	out->len = 0;
	if (v == NULL) {
		seterr(why, wl, "JWK member \"%s\" is missing", name);
		return -1;
	}
	s = json_string_value(v);
	if (s == NULL) {
		seterr(why, wl, "JWK member \"%s\" is not a string", name);
		return -1;
	}
	slen = json_string_length(v);
	if (slen == 0 || slen > (max / 3 + 1) * 4) {
		seterr(why, wl, "JWK member \"%s\" has a bad length", name);
		return -1;
	}
	out->p = malloc(slen / 4 * 3 + 3);
	if (out->p == NULL) {
		seterr(why, wl, "out of memory");
		return -1;
	}
	n = tk_b64url_decode(s, slen, out->p);
	if (n <= 0) {
		free(out->p);
		out->p = NULL;
		seterr(why, wl, "JWK member \"%s\" is not valid base64url", name);
		return -1;
	}
	out->len = (size_t)n;
	if ((exact > 0 && out->len != exact) || out->len > max) {
		seterr(why, wl, "JWK member \"%s\" is %zu bytes; expected %zu", name, out->len,
		       exact > 0 ? exact : max);
		bin_release(out);
		return -1;
	}
	return 0;
}

static EVP_PKEY *fromdata(const char *type, OSSL_PARAM *params, char *why, size_t wl)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pk = NULL;
	char r[128];

	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_KEYPAIR, params) != 1) {
		EVP_PKEY_free(pk);
		pk = NULL;
		seterr(why, wl, "JWK does not describe a valid %s key (%s)", type,
		       ossl_reason(r, sizeof(r), "import failed"));
	}
	EVP_PKEY_CTX_free(ctx);
	return pk;
}

static EVP_PKEY *jwk_ec(json_t *o, char *why, size_t wl)
{
	const char *crv = json_string_value(json_object_get(o, "crv"));
	struct bin x = { 0 }, y = { 0 }, d = { 0 };
	unsigned char pub[1 + 2 * P256_LEN], dn[P256_LEN];
	char group[] = "prime256v1";
	EVP_PKEY *pk = NULL;

	if (crv == NULL || strcmp(crv, "P-256") != 0) {
		seterr(why, wl, "JWK EC curve \"%.16s\" is not supported (only P-256, for ES256)",
		       crv ? crv : "(none)");
		return NULL;
	}
	if (jwk_member(o, "x", P256_LEN, P256_LEN, &x, why, wl) != 0 ||
	    jwk_member(o, "y", P256_LEN, P256_LEN, &y, why, wl) != 0 ||
	    jwk_member(o, "d", P256_LEN, P256_LEN, &d, why, wl) != 0)
		goto done;
	pub[0] = 0x04;
	memcpy(pub + 1, x.p, P256_LEN);
	memcpy(pub + 1 + P256_LEN, y.p, P256_LEN);
	to_native(d.p, P256_LEN, dn);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)),
		OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, dn, sizeof(dn)),
		OSSL_PARAM_construct_end(),
	};
	pk = fromdata("EC", params, why, wl);
done:
	tk_wipe(dn, sizeof(dn));
	bin_release(&x);
	bin_release(&y);
	bin_release(&d);
	return pk;
}

static EVP_PKEY *jwk_okp(json_t *o, char *why, size_t wl)
{
	const char *crv = json_string_value(json_object_get(o, "crv"));
	struct bin x = { 0 }, d = { 0 };
	unsigned char pub[ED25519_LEN];
	size_t publen = sizeof(pub);
	EVP_PKEY *pk = NULL;

	if (crv == NULL || strcmp(crv, "Ed25519") != 0) {
		seterr(why, wl, "JWK OKP curve \"%.16s\" is not supported (only Ed25519, for EdDSA)",
		       crv ? crv : "(none)");
		return NULL;
	}
	if (jwk_member(o, "x", ED25519_LEN, ED25519_LEN, &x, why, wl) != 0 ||
	    jwk_member(o, "d", ED25519_LEN, ED25519_LEN, &d, why, wl) != 0)
		goto done;
	pk = EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, d.p, d.len);
	if (pk == NULL) {
		ERR_clear_error();
		seterr(why, wl, "JWK does not describe a valid Ed25519 key");
		goto done;
	}
	if (EVP_PKEY_get_raw_public_key(pk, pub, &publen) != 1 || publen != ED25519_LEN ||
	    memcmp(pub, x.p, ED25519_LEN) != 0) {
		ERR_clear_error();
		seterr(why, wl, "JWK public key \"x\" does not match its private key \"d\"");
		EVP_PKEY_free(pk);
		pk = NULL;
	}
done:
	bin_release(&x);
	bin_release(&d);
	return pk;
}

static EVP_PKEY *jwk_rsa(json_t *o, char *why, size_t wl)
{
	static const char *const pub_jwk[2] = { "n", "e" };
	static const char *const pub_ossl[2] = { OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E };
	struct bin raw[2 + RSA_PRIV_COUNT];
	struct bin nat[2 + RSA_PRIV_COUNT];
	OSSL_PARAM params[2 + RSA_PRIV_COUNT + 1];
	EVP_PKEY *pk = NULL;
	size_t count = 0;

	memset(raw, 0, sizeof(raw));
	memset(nat, 0, sizeof(nat));
	if (json_object_get(o, "oth") != NULL) {
		seterr(why, wl, "multi-prime RSA keys (\"oth\") are not supported");
		return NULL;
	}
	for (size_t i = 0; i < 2 + RSA_PRIV_COUNT; i++) {
		const char *jn = i < 2 ? pub_jwk[i] : RSA_PRIV_JWK[i - 2];
		const char *on = i < 2 ? pub_ossl[i] : RSA_PRIV_OSSL[i - 2];
		if (jwk_member(o, jn, 0, RSA_MAX_BYTES, &raw[i], why, wl) != 0)
			goto done;
		nat[i].p = malloc(raw[i].len);
		if (nat[i].p == NULL) {
			seterr(why, wl, "out of memory");
			goto done;
		}
		nat[i].len = raw[i].len;
		to_native(raw[i].p, raw[i].len, nat[i].p);
		params[count++] = OSSL_PARAM_construct_BN(on, nat[i].p, nat[i].len);
	}
	params[count] = OSSL_PARAM_construct_end();
	pk = fromdata("RSA", params, why, wl);
done:
	for (size_t i = 0; i < 2 + RSA_PRIV_COUNT; i++) {
		bin_release(&raw[i]);
		bin_release(&nat[i]);
	}
	return pk;
}

/*
 * Parse a private JWK. On success returns the key and sets *kid (malloc'd,
 * or NULL when the JWK has none) and *alg (malloc'd, or NULL).
 */
static EVP_PKEY *load_jwk(const char *buf, size_t len, char **kid, char **alg, char *why,
                          size_t wl)
{
	json_error_t jerr;
	json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *v;
	const char *kty;
	EVP_PKEY *pk = NULL;

	*kid = NULL;
	*alg = NULL;
	if (o == NULL) {
		seterr(why, wl, "invalid JSON at line %d: %s", jerr.line, jerr.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		seterr(why, wl, "a JWK must be a JSON object");
		goto done;
	}
	if (json_object_get(o, "keys") != NULL) {
		seterr(why, wl, "a JWK Set is not accepted: put one private JWK in each file");
		goto done;
	}
	kty = json_string_value(json_object_get(o, "kty"));
	if (kty == NULL) {
		seterr(why, wl, "JWK has no string \"kty\"");
		goto done;
	}
	if (json_object_get(o, "d") == NULL) {
		seterr(why, wl, "JWK holds no private key (\"d\"): a signing key file must");
		goto done;
	}
	v = json_object_get(o, "use");
	if (v != NULL && (!json_is_string(v) || strcmp(json_string_value(v), "sig") != 0)) {
		seterr(why, wl, "JWK \"use\" must be \"sig\"");
		goto done;
	}
	v = json_object_get(o, "alg");
	if (v != NULL) {
		if (!json_is_string(v) || json_string_length(v) > 16) {
			seterr(why, wl, "JWK \"alg\" is malformed");
			goto done;
		}
		*alg = strdup(json_string_value(v));
		if (*alg == NULL) {
			seterr(why, wl, "out of memory");
			goto done;
		}
	}
	v = json_object_get(o, "kid");
	if (v != NULL) {
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
		    !kid_ok(json_string_value(v))) {
			seterr(why, wl, "JWK \"kid\" must be 1..%d printable ASCII characters "
			       "without '\"' or '\\'", TK_KID_MAX);
			goto done;
		}
		*kid = strdup(json_string_value(v));
		if (*kid == NULL) {
			seterr(why, wl, "out of memory");
			goto done;
		}
	}
	if (strcmp(kty, "EC") == 0)
		pk = jwk_ec(o, why, wl);
	else if (strcmp(kty, "OKP") == 0)
		pk = jwk_okp(o, why, wl);
	else if (strcmp(kty, "RSA") == 0)
		pk = jwk_rsa(o, why, wl);
	else if (strcmp(kty, "oct") == 0)
		seterr(why, wl, "symmetric (\"oct\") keys are not accepted: tokens are signed "
		       "with an asymmetric key");
	else
		seterr(why, wl, "JWK kty \"%.16s\" is not supported", kty);
done:
	if (pk == NULL) {
		free(*kid);
		free(*alg);
		*kid = NULL;
		*alg = NULL;
	}
	if (o != NULL && json_is_object(o)) {
		for (size_t i = 0; i < RSA_PRIV_COUNT; i++)
			json_string_wipe(json_object_get(o, RSA_PRIV_JWK[i]));
	}
	json_decref(o);
	return pk;
}

/* ------------------------------------------------------------------------ */
/* libjwt: loading and self-test                                            */

static int set_header_str(jwt_builder_t *b, const char *name, const char *value)
{
	jwt_value_t v;

	memset(&v, 0, sizeof(v));
	v.type = JWT_VALUE_STR;
	v.name = name;
	v.str_val = value;
	v.replace = 1;
	return jwt_builder_header_set(b, &v) == JWT_VALUE_ERR_NONE ? 0 : -1;
}

/* A builder for key `k`: key set once, iat off (we set it), typ and kid fixed. */
static jwt_builder_t *builder_for(const struct tk_key *k, char *why, size_t wl)
{
	jwt_builder_t *b = jwt_builder_new();

	if (b == NULL) {
		seterr(why, wl, "out of memory");
		return NULL;
	}
	if (jwt_builder_setkey(b, k->alg, k->item) != 0) {
		seterr(why, wl, "libjwt refused the key: %s", jwt_builder_error_msg(b));
		goto fail;
	}
	if (jwt_builder_enable_iat(b, 0) < 0 || set_header_str(b, "typ", "at+jwt") != 0 ||
	    set_header_str(b, "kid", k->kid) != 0) {
		seterr(why, wl, "cannot set up the token header");
		goto fail;
	}
	return b;
fail:
	jwt_builder_free(b);
	return NULL;
}

/* Sign with the private key through libjwt and verify with the public JWK we
 * publish: proves that verifiers using our JWKS will accept our tokens. */
static int selftest(const struct tk_key *k, char *why, size_t wl)
{
	jwk_set_t *pub = jwks_create(k->pub_json);
	const jwk_item_t *item = NULL;
	jwt_builder_t *b = NULL;
	jwt_checker_t *c = NULL;
	char *tok = NULL;
	int rc = -1;

	if (pub == NULL || jwks_error_any(pub) != 0 || jwks_item_count(pub) != 1 ||
	    (item = jwks_item_get(pub, 0)) == NULL || jwks_item_is_private(item)) {
		seterr(why, wl, "self-test: libjwt cannot load the public JWK");
		goto done;
	}
	b = builder_for(k, why, wl);
	if (b == NULL)
		goto done;
	tok = jwt_builder_generate(b);
	if (tok == NULL) {
		seterr(why, wl, "self-test: signing failed: %s", jwt_builder_error_msg(b));
		goto done;
	}
	c = jwt_checker_new();
	if (c == NULL || jwt_checker_setkey(c, k->alg, item) != 0 ||
	    jwt_checker_verify(c, tok) != 0) {
		seterr(why, wl, "self-test: the public key does not verify a signed token (%s)",
		       c ? jwt_checker_error_msg(c) : "out of memory");
		goto done;
	}
	rc = 0;
done:
	free(tok);
	jwt_checker_free(c);
	jwt_builder_free(b);
	jwks_free(pub);
	ERR_clear_error();
	return rc;
}

/* Hand the private JWK to libjwt, appending it to s->set at index s->n. */
static const jwk_item_t *jwt_load(tk_signer *s, const char *priv_json, const struct jwk_parts *p,
                                  char *why, size_t wl)
{
	const jwk_item_t *item;
	jwk_set_t *set = jwks_load(s->set, priv_json);

	if (set == NULL || jwks_error(set)) {
		seterr(why, wl, "libjwt cannot load the key: %s",
		       set ? jwks_error_msg(set) : "out of memory");
		if (set != NULL)
			jwks_error_clear(set);
		goto fail;
	}
	if (jwks_item_count(set) != s->n + 1 || (item = jwks_item_get(set, s->n)) == NULL) {
		seterr(why, wl, "libjwt did not add the key");
		goto fail;
	}
	if (jwks_item_error(item)) {
		seterr(why, wl, "libjwt cannot load the key: %s", jwks_item_error_msg(item));
		goto fail;
	}
	if (!jwks_item_is_private(item) || jwks_item_alg(item) != p->alg ||
	    jwks_item_kty(item) != (p->kty == KTY_EC    ? JWK_KEY_TYPE_EC :
	                            p->kty == KTY_OKP   ? JWK_KEY_TYPE_OKP :
	                                                  JWK_KEY_TYPE_RSA)) {
		seterr(why, wl, "libjwt loaded the key differently than expected");
		goto fail;
	}
	ERR_clear_error();
	return item;
fail:
	while (jwks_item_count(s->set) > s->n)
		jwks_item_free(s->set, s->n);
	ERR_clear_error();
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Signer                                                                   */

tk_signer *tk_signer_new(void)
{
	tk_signer *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->st = calloc(1, sizeof(*s->st));
	s->set = jwks_create(NULL);
	if (s->st == NULL || s->set == NULL) {
		jwks_free(s->set);
		free(s->st);
		free(s);
		return NULL;
	}
	atomic_init(&s->st->active, 0);
	atomic_init(&s->st->frozen, false);
	return s;
}

static int find_kid(const tk_signer *s, const char *kid)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->keys[i].kid, kid) == 0)
			return (int)i;
	return -1;
}

int tk_signer_add_file(tk_signer *s, const char *path, char *err, size_t errlen)
{
	char why[WHY_LEN] = "";
	char tp[TK_THUMBPRINT_LEN + 1];
	struct jwk_parts parts;
	struct tk_key key;
	char *buf = NULL, *kid = NULL, *jalg = NULL, *priv_json = NULL;
	EVP_PKEY *pk = NULL;
	size_t len = 0;
	const char *q;
	int is_jwk;

	memset(&parts, 0, sizeof(parts));
	memset(&key, 0, sizeof(key));
	if (s == NULL || path == NULL) {
		seterr(err, errlen, "no signer or path given");
		return -1;
	}
	if (atomic_load(&s->st->frozen)) {
		seterr(err, errlen, "%s: signing keys can only be added before minting starts", path);
		return -1;
	}
	if (s->n >= TK_SIGNER_MAX_KEYS) {
		seterr(err, errlen, "%s: too many signing keys (at most %d)", path,
		       TK_SIGNER_MAX_KEYS);
		return -1;
	}

	buf = read_key_file(path, &len, why, sizeof(why));
	if (buf == NULL)
		goto fail;
	for (q = buf; *q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'; q++)
		;
	is_jwk = *q == '{';
	if (is_jwk)
		pk = load_jwk(buf, len, &kid, &jalg, why, sizeof(why));
	else if (strncmp(q, "-----BEGIN ", 11) == 0)
		pk = load_pem(buf, len, why, sizeof(why));
	else
		seterr(why, sizeof(why), "neither a JWK (JSON) nor a PEM private key");
	tk_wipe(buf, len);
	free(buf);
	buf = NULL;
	if (pk == NULL)
		goto fail;

	if (export_pkey(pk, &parts, why, sizeof(why)) != 0 || check_pkey(pk, why, sizeof(why)) != 0)
		goto fail;
	EVP_PKEY_free(pk);
	pk = NULL;

	if (jalg != NULL && strcmp(jalg, parts.alg_name) != 0) {
		seterr(why, sizeof(why), "JWK alg \"%s\" does not match the key (an %s key signs "
		       "with %s)", jalg,
		       parts.kty == KTY_EC ? "EC P-256" : parts.kty == KTY_OKP ? "Ed25519" : "RSA",
		       parts.alg_name);
		goto fail;
	}
	if (kid == NULL) {
		if (parts_thumbprint(&parts, tp) != 0) {
			seterr(why, sizeof(why), "cannot compute the key's thumbprint");
			goto fail;
		}
		kid = strdup(tp);
		if (kid == NULL) {
			seterr(why, sizeof(why), "out of memory");
			goto fail;
		}
	}
	if (find_kid(s, kid) >= 0) {
		seterr(why, sizeof(why), "duplicate kid \"%s\": another loaded key has it", kid);
		goto fail;
	}

	key.kid = kid;
	key.alg = parts.alg;
	key.alg_name = parts.alg_name;
	key.pub_json = parts_json(&parts, kid, 0);
	priv_json = parts_json(&parts, kid, 1);
	if (key.pub_json == NULL || priv_json == NULL) {
		seterr(why, sizeof(why), "out of memory");
		goto fail;
	}
	key.item = jwt_load(s, priv_json, &parts, why, sizeof(why));
	secret_free(priv_json);
	priv_json = NULL;
	parts_release(&parts);
	if (key.item == NULL)
		goto fail;
	if (selftest(&key, why, sizeof(why)) != 0) {
		while (jwks_item_count(s->set) > s->n)
			jwks_item_free(s->set, s->n);
		goto fail;
	}
	s->keys[s->n++] = key;
	free(jalg);
	return 0;

fail:
	seterr(err, errlen, "%s: %s", path, why[0] ? why : "cannot load the key");
	if (buf != NULL) {
		tk_wipe(buf, len);
		free(buf);
	}
	EVP_PKEY_free(pk);
	parts_release(&parts);
	secret_free(priv_json);
	free(key.pub_json);
	free(kid);
	free(jalg);
	ERR_clear_error();
	return -1;
}

int tk_signer_set_active(tk_signer *s, const char *kid, char *err, size_t errlen)
{
	int i;

	if (s == NULL || kid == NULL) {
		seterr(err, errlen, "no signer or kid given");
		return -1;
	}
	i = find_kid(s, kid);
	if (i < 0) {
		seterr(err, errlen, "no signing key has kid \"%.*s\"", TK_KID_MAX, kid);
		return -1;
	}
	atomic_store(&s->st->active, (size_t)i);
	return 0;
}

size_t tk_signer_count(const tk_signer *s)
{
	return s ? s->n : 0;
}

int tk_signer_key_at(const tk_signer *s, size_t index, const char **kid, const char **alg)
{
	if (s == NULL || index >= s->n)
		return -1;
	if (kid != NULL)
		*kid = s->keys[index].kid;
	if (alg != NULL)
		*alg = s->keys[index].alg_name;
	return 0;
}

static const struct tk_key *active_key(const tk_signer *s)
{
	size_t i;

	if (s == NULL || s->n == 0)
		return NULL;
	i = atomic_load(&s->st->active);
	return i < s->n ? &s->keys[i] : NULL;
}

const char *tk_signer_active_kid(const tk_signer *s)
{
	const struct tk_key *k = active_key(s);
	return k ? k->kid : NULL;
}

const char *tk_signer_active_alg(const tk_signer *s)
{
	const struct tk_key *k = active_key(s);
	return k ? k->alg_name : NULL;
}

char *tk_signer_jwks_json(const tk_signer *s)
{
	static const char head[] = "{\"keys\":[", tail[] = "]}";
	size_t len = sizeof(head) - 1 + sizeof(tail) - 1, o = 0;
	char *out;

	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		len += strlen(s->keys[i].pub_json) + 1;
	out = malloc(len + 1);
	if (out == NULL)
		return NULL;
	memcpy(out, head, sizeof(head) - 1);
	o = sizeof(head) - 1;
	for (size_t i = 0; i < s->n; i++) {
		size_t l = strlen(s->keys[i].pub_json);
		if (i > 0)
			out[o++] = ',';
		memcpy(out + o, s->keys[i].pub_json, l);
		o += l;
	}
	memcpy(out + o, tail, sizeof(tail));
	return out;
}

void tk_signer_free(tk_signer *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->keys[i].kid);
		free(s->keys[i].pub_json);
	}
	jwks_free(s->set);
	free(s->st);
	free(s);
}

/* ------------------------------------------------------------------------ */
/* Minting                                                                  */

static int mint_cb(jwt_t *jwt, jwt_config_t *cfg);

tk_minter *tk_minter_new(const tk_signer *s, char *err, size_t errlen)
{
	char why[WHY_LEN] = "";
	tk_minter *m;

	if (s == NULL || s->n == 0) {
		seterr(err, errlen, "no signing key loaded");
		return NULL;
	}
	atomic_store(&s->st->frozen, true);
	m = calloc(1, sizeof(*m));
	if (m == NULL || (m->b = calloc(s->n, sizeof(*m->b))) == NULL) {
		free(m);
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	m->s = s;
	m->n = s->n;
	for (size_t i = 0; i < s->n; i++) {
		m->b[i] = builder_for(&s->keys[i], why, sizeof(why));
		if (m->b[i] == NULL || jwt_builder_setcb(m->b[i], mint_cb, m) != 0) {
			seterr(err, errlen, "key %s: %s", s->keys[i].kid, why);
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
	for (size_t i = 0; i < m->n; i++)
		jwt_builder_free(m->b[i]);
	free(m->b);
	free(m);
}

static int claim_set(jwt_t *jwt, jwt_value_t *v, const char *name)
{
	v->name = name;
	v->replace = 1;
	v->error = JWT_VALUE_ERR_NONE;
	return jwt_claim_set(jwt, v) == JWT_VALUE_ERR_NONE ? 0 : -1;
}

static int claim_str(jwt_t *jwt, const char *name, const char *value)
{
	jwt_value_t v;

	memset(&v, 0, sizeof(v));
	v.type = JWT_VALUE_STR;
	v.str_val = value;
	return claim_set(jwt, &v, name);
}

static int claim_int(jwt_t *jwt, const char *name, int64_t value)
{
	jwt_value_t v;

	memset(&v, 0, sizeof(v));
	v.type = JWT_VALUE_INT;
	v.int_val = (jwt_long_t)value;
	return claim_set(jwt, &v, name);
}

/* aud as a JSON array (2..n audiences). */
static int claim_aud_array(jwt_t *jwt, const char *const *aud, size_t count)
{
	json_t *arr = json_array();
	char *text = NULL;
	jwt_value_t v;
	int rc = -1;

	if (arr == NULL)
		return -1;
	for (size_t i = 0; i < count; i++)
		if (json_array_append_new(arr, json_string(aud[i])) != 0)
			goto done;
	text = json_dumps(arr, JSON_COMPACT);
	if (text == NULL)
		goto done;
	memset(&v, 0, sizeof(v));
	v.type = JWT_VALUE_JSON;
	v.json_val = text;
	rc = claim_set(jwt, &v, "aud");
done:
	free(text);
	json_decref(arr);
	return rc;
}

/* libjwt calls this on the fresh jwt_t of every generate: the claims are
 * exactly those of the mint in progress, never left over from another. */
static int mint_cb(jwt_t *jwt, jwt_config_t *cfg)
{
	tk_minter *m = cfg->ctx;
	const tk_token_claims *c = m ? m->cur : NULL;
	const char *bad = NULL;

	if (c == NULL || m->jti == NULL) {
		if (m != NULL)
			snprintf(m->cb_err, sizeof(m->cb_err), "no mint in progress");
		return 1;
	}
	/* Start from an empty claim set whatever the builder holds. */
	if (jwt_claim_del(jwt, NULL) != JWT_VALUE_ERR_NONE)
		bad = "(clear)";
	else if (claim_str(jwt, "iss", c->iss) != 0)
		bad = "iss";
	else if (claim_str(jwt, "sub", c->sub) != 0)
		bad = "sub";
	else if ((c->aud_count == 1 ? claim_str(jwt, "aud", c->aud[0])
	                            : claim_aud_array(jwt, c->aud, c->aud_count)) != 0)
		bad = "aud";
	else if (claim_str(jwt, "client_id", c->client_id) != 0)
		bad = "client_id";
	else if (c->scope != NULL && c->scope[0] != '\0' && claim_str(jwt, "scope", c->scope) != 0)
		bad = "scope";
	else if (claim_str(jwt, "acct", c->acct) != 0)
		bad = "acct";
	else if (claim_int(jwt, "iat", c->iat) != 0)
		bad = "iat";
	else if (claim_int(jwt, "nbf", c->iat) != 0)
		bad = "nbf";
	else if (claim_int(jwt, "exp", c->exp) != 0)
		bad = "exp";
	else if (claim_str(jwt, "jti", m->jti) != 0)
		bad = "jti";
	if (bad != NULL) {
		snprintf(m->cb_err, sizeof(m->cb_err),
		         "cannot set claim %s (not valid UTF-8?)", bad);
		return 1;
	}
	return 0;
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
	return NULL;
}

char *tk_minter_mint(tk_minter *m, const tk_token_claims *c, char jti_out[TK_JTI_LEN + 1],
                     char *err, size_t errlen)
{
	unsigned char raw[JTI_RAW_LEN];
	char jti[TK_JTI_LEN + 1];
	const char *problem;
	jwt_builder_t *b;
	size_t idx;
	char *tok;

	if (jti_out != NULL)
		jti_out[0] = '\0';
	if (m == NULL || c == NULL) {
		seterr(err, errlen, "no minter or claims given");
		return NULL;
	}
	problem = claims_problem(c);
	if (problem != NULL) {
		seterr(err, errlen, "invalid claims: %s", problem);
		return NULL;
	}
	idx = atomic_load(&m->s->st->active);
	if (idx >= m->n) {
		seterr(err, errlen, "active signing key is not available to this minter");
		return NULL;
	}
	b = m->b[idx];
	if (tk_random_bytes(raw, sizeof(raw)) != 0) {
		seterr(err, errlen, "CSPRNG failure: cannot make a jti, no token issued");
		return NULL;
	}
	tk_b64url_encode(raw, sizeof(raw), jti);
	tk_wipe(raw, sizeof(raw));

	m->cur = c;
	m->jti = jti;
	m->cb_err[0] = '\0';
	jwt_builder_error_clear(b);
	tok = jwt_builder_generate(b);
	m->cur = NULL;
	m->jti = NULL;
	if (tok == NULL) {
		seterr(err, errlen, "cannot mint token: %s",
		       m->cb_err[0] ? m->cb_err : jwt_builder_error_msg(b));
		jwt_builder_error_clear(b);
		ERR_clear_error();
		return NULL;
	}
	if (strlen(tok) > TK_TOKEN_MAX) {
		/* Larger than introspection, revocation and verifiers accept: refuse
		 * to issue what nobody could use. */
		seterr(err, errlen, "the token would be longer than %d bytes", TK_TOKEN_MAX);
		free(tok);
		return NULL;
	}
	if (jti_out != NULL)
		memcpy(jti_out, jti, sizeof(jti));
	return tok;
}
