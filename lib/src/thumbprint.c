/*
 * thumbprint.c - RFC 7638 JWK thumbprints: of a key being loaded (its kid
 * when the file names none) and of any public JWK (tk_jwk_thumbprint).
 */
#include "internal.h"
#include "jwk.h"
#include "tokend/crypto.h"
#include "tokend/signer.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>

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

/* Hash the canonical form: the required public members in lexicographic
 * order, no whitespace. Values must already be checked to need no escaping. */
static int thumbprint_of(const char *kty, const char *crv, const char *x, const char *y,
                         const char *n, const char *e, char out[TK_THUMBPRINT_LEN + 1])
{
	tk_jwk_member_t m[4];
	size_t k = 0;
	unsigned char md[32];
	unsigned int mdlen = 0;
	char *canon;
	int ok;

	if (strcmp(kty, "EC") == 0) {
		m[k++] = (tk_jwk_member_t){ "crv", crv };
		m[k++] = (tk_jwk_member_t){ "kty", kty };
		m[k++] = (tk_jwk_member_t){ "x", x };
		m[k++] = (tk_jwk_member_t){ "y", y };
	} else if (strcmp(kty, "RSA") == 0) {
		m[k++] = (tk_jwk_member_t){ "e", e };
		m[k++] = (tk_jwk_member_t){ "kty", kty };
		m[k++] = (tk_jwk_member_t){ "n", n };
	} else if (strcmp(kty, "OKP") == 0) {
		m[k++] = (tk_jwk_member_t){ "crv", crv };
		m[k++] = (tk_jwk_member_t){ "kty", kty };
		m[k++] = (tk_jwk_member_t){ "x", x };
	} else {
		return -1;
	}
	canon = tk_jwk_members_json(m, k);
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

int tk_jwk_parts_thumbprint(const tk_jwk_parts *p, char out[TK_THUMBPRINT_LEN + 1])
{
	switch (p->kty) {
	case TK_KTY_EC:
		return thumbprint_of("EC", "P-256", p->x, p->y, NULL, NULL, out);
	case TK_KTY_OKP:
		return thumbprint_of("OKP", "Ed25519", p->x, NULL, NULL, NULL, out);
	case TK_KTY_RSA:
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
		tk_seterr(err, errlen, "no JWK given");
		return -1;
	}
	o = json_loadb(jwk_json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL || !json_is_object(o)) {
		tk_seterr(err, errlen, "JWK is not a JSON object%s%s", o ? "" : ": ",
		       o ? "" : jerr.text);
		goto done;
	}
	kty = json_string_value(json_object_get(o, "kty"));
	if (kty == NULL) {
		tk_seterr(err, errlen, "JWK has no string \"kty\"");
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
		tk_seterr(err, errlen, "JWK kty \"%.16s\" is not EC, OKP or RSA", kty);
		goto done;
	}
	if (strcmp(kty, "RSA") != 0) {
		crv = json_string_value(json_object_get(o, "crv"));
		if (!crv_ok(crv)) {
			tk_seterr(err, errlen, "JWK member \"crv\" is missing or malformed");
			goto done;
		}
	}
	for (size_t i = 0; i < 3 && need[i]; i++) {
		val[i] = json_string_value(json_object_get(o, need[i]));
		if (!is_b64url(val[i])) {
			tk_seterr(err, errlen, "JWK member \"%s\" is missing or not base64url", need[i]);
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
		tk_seterr(err, errlen, "SHA-256 failed");
done:
	json_decref(o);
	return rc;
}
