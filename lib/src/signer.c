/*
 * signer.c - a server's set of signing keys: each key file read once
 * (keyfile.c), converted to canonical JWK members (jwk.c), named by its kid
 * or RFC 7638 thumbprint (thumbprint.c), handed to libjwt once and
 * self-tested; the JWKS published from it. Minting is in mint.c.
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
#include "internal.h"
#include "jwk.h"
#include "signer_int.h"
#include "tokend/crypto.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#define WHY_LEN       320

/* libjwt's name of the algorithm a key of this type signs with. */
static jwt_alg_t jwt_alg_of(tk_jwk_kty kty)
{
	return kty == TK_KTY_EC ? JWT_ALG_ES256 : kty == TK_KTY_OKP ? JWT_ALG_EDDSA : JWT_ALG_RS256;
}

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
jwt_builder_t *tk_signing_key_builder(const struct signing_key *k, char *why, size_t wl)
{
	jwt_builder_t *b = jwt_builder_new();

	if (b == NULL) {
		tk_seterr(why, wl, "out of memory");
		return NULL;
	}
	if (jwt_builder_setkey(b, k->alg, k->item) != 0) {
		tk_seterr(why, wl, "libjwt refused the key: %s", jwt_builder_error_msg(b));
		goto fail;
	}
	if (jwt_builder_enable_iat(b, 0) < 0 || set_header_str(b, "typ", "at+jwt") != 0 ||
	    set_header_str(b, "kid", k->kid) != 0) {
		tk_seterr(why, wl, "cannot set up the token header");
		goto fail;
	}
	return b;
fail:
	jwt_builder_free(b);
	return NULL;
}

/* Sign with the private key through libjwt and verify with the public JWK we
 * publish: proves that verifiers using our JWKS will accept our tokens. */
static int selftest(const struct signing_key *k, char *why, size_t wl)
{
	jwk_set_t *pub = jwks_create(k->pub_json);
	const jwk_item_t *item = NULL;
	jwt_builder_t *b = NULL;
	jwt_checker_t *c = NULL;
	char *tok = NULL;
	int rc = -1;

	if (pub == NULL || jwks_error_any(pub) != 0 || jwks_item_count(pub) != 1 ||
	    (item = jwks_item_get(pub, 0)) == NULL || jwks_item_is_private(item)) {
		tk_seterr(why, wl, "self-test: libjwt cannot load the public JWK");
		goto done;
	}
	b = tk_signing_key_builder(k, why, wl);
	if (b == NULL)
		goto done;
	tok = jwt_builder_generate(b);
	if (tok == NULL) {
		tk_seterr(why, wl, "self-test: signing failed: %s", jwt_builder_error_msg(b));
		goto done;
	}
	c = jwt_checker_new();
	if (c == NULL || jwt_checker_setkey(c, k->alg, item) != 0 ||
	    jwt_checker_verify(c, tok) != 0) {
		tk_seterr(why, wl, "self-test: the public key does not verify a signed token (%s)",
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
static const jwk_item_t *jwt_load(tk_signer *s, const char *priv_json, const tk_jwk_parts *p,
                                  char *why, size_t wl)
{
	const jwk_item_t *item;
	jwk_set_t *set = jwks_load(s->set, priv_json);

	if (set == NULL || jwks_error(set)) {
		tk_seterr(why, wl, "libjwt cannot load the key: %s",
		       set ? jwks_error_msg(set) : "out of memory");
		if (set != NULL)
			jwks_error_clear(set);
		goto fail;
	}
	if (jwks_item_count(set) != s->n + 1 || (item = jwks_item_get(set, s->n)) == NULL) {
		tk_seterr(why, wl, "libjwt did not add the key");
		goto fail;
	}
	if (jwks_item_error(item)) {
		tk_seterr(why, wl, "libjwt cannot load the key: %s", jwks_item_error_msg(item));
		goto fail;
	}
	if (!jwks_item_is_private(item) || jwks_item_alg(item) != jwt_alg_of(p->kty) ||
	    jwks_item_kty(item) != (p->kty == TK_KTY_EC    ? JWK_KEY_TYPE_EC :
	                            p->kty == TK_KTY_OKP   ? JWK_KEY_TYPE_OKP :
	                                                  JWK_KEY_TYPE_RSA)) {
		tk_seterr(why, wl, "libjwt loaded the key differently than expected");
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

/* Add the key `pk` (consumed) read from `label` with its own kid / alg (or
 * NULL); `want_kid`: the kid it must have (the database's row). */
static int add_pkey(tk_signer *s, EVP_PKEY *pk, char *kid, char *jalg, const char *want_kid,
                    const char *label, char *err, size_t errlen)
{
	char why[WHY_LEN] = "";
	char tp[TK_THUMBPRINT_LEN + 1];
	tk_jwk_parts parts;
	struct signing_key key;
	char *priv_json = NULL;

	memset(&parts, 0, sizeof(parts));
	memset(&key, 0, sizeof(key));
	if (pk == NULL)
		goto fail;
	if (tk_jwk_export(pk, &parts, why, sizeof(why)) != 0 || tk_keyfile_check(pk, why, sizeof(why)) != 0)
		goto fail;
	EVP_PKEY_free(pk);
	pk = NULL;

	if (jalg != NULL && strcmp(jalg, parts.alg_name) != 0) {
		tk_seterr(why, sizeof(why), "JWK alg \"%s\" does not match the key (an %s key signs "
		       "with %s)", jalg,
		       parts.kty == TK_KTY_EC ? "EC P-256" : parts.kty == TK_KTY_OKP ? "Ed25519" : "RSA",
		       parts.alg_name);
		goto fail;
	}
	if (kid == NULL || want_kid != NULL) {
		if (tk_jwk_parts_thumbprint(&parts, tp) != 0) {
			tk_seterr(why, sizeof(why), "cannot compute the key's thumbprint");
			goto fail;
		}
	}
	if (want_kid != NULL && (strcmp(tp, want_kid) != 0 || (kid != NULL && strcmp(kid, want_kid) != 0))) {
		tk_seterr(why, sizeof(why), "the key is not the one its kid names (its thumbprint differs)");
		goto fail;
	}
	if (kid == NULL) {
		kid = strdup(tp);
		if (kid == NULL) {
			tk_seterr(why, sizeof(why), "out of memory");
			goto fail;
		}
	}
	if (find_kid(s, kid) >= 0) {
		tk_seterr(why, sizeof(why), "duplicate kid \"%s\": another loaded key has it", kid);
		goto fail;
	}

	key.kid = kid;
	key.alg = jwt_alg_of(parts.kty);
	key.alg_name = parts.alg_name;
	key.pub_json = tk_jwk_parts_json(&parts, kid, 0);
	priv_json = tk_jwk_parts_json(&parts, kid, 1);
	if (key.pub_json == NULL || priv_json == NULL) {
		tk_seterr(why, sizeof(why), "out of memory");
		goto fail;
	}
	key.item = jwt_load(s, priv_json, &parts, why, sizeof(why));
	tk_secret_free(priv_json);
	priv_json = NULL;
	tk_jwk_parts_release(&parts);
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
	tk_seterr(err, errlen, "%s: %s", label, why[0] ? why : "cannot load the key");
	EVP_PKEY_free(pk);
	tk_jwk_parts_release(&parts);
	tk_secret_free(priv_json);
	free(key.pub_json);
	free(kid);
	free(jalg);
	ERR_clear_error();
	return -1;
}

/* The checks every addition starts with. 0, or -1 with err set. */
static int can_add(const tk_signer *s, const char *label, char *err, size_t errlen)
{
	if (s == NULL || label == NULL) {
		tk_seterr(err, errlen, "no signer or key given");
		return -1;
	}
	if (atomic_load(&s->st->frozen)) {
		tk_seterr(err, errlen, "%s: signing keys can only be added before minting starts", label);
		return -1;
	}
	if (s->n >= TK_SIGNER_MAX_KEYS) {
		tk_seterr(err, errlen, "%s: too many signing keys (at most %d)", label,
		       TK_SIGNER_MAX_KEYS);
		return -1;
	}
	return 0;
}

int tk_signer_add_file(tk_signer *s, const char *path, char *err, size_t errlen)
{
	char why[WHY_LEN] = "";
	char *kid = NULL, *jalg = NULL;
	EVP_PKEY *pk;

	if (can_add(s, path, err, errlen) != 0)
		return -1;
	pk = tk_keyfile_load(path, &kid, &jalg, why, sizeof(why));
	if (pk == NULL) {
		tk_seterr(err, errlen, "%s: %s", path, why[0] ? why : "cannot load the key");
		ERR_clear_error();
		return -1;
	}
	return add_pkey(s, pk, kid, jalg, NULL, path, err, errlen);
}

int tk_signer_add_key(tk_signer *s, const char *key, size_t len, const char *want_kid,
                      const char *label, char *err, size_t errlen)
{
	char why[WHY_LEN] = "";
	char *kid = NULL, *jalg = NULL, *copy;
	EVP_PKEY *pk;

	if (can_add(s, label, err, errlen) != 0)
		return -1;
	if (key == NULL || len == 0 || len > 64 * 1024) {
		tk_seterr(err, errlen, "%s: no key, or a key too large", label);
		return -1;
	}
	copy = malloc(len + 1);
	if (copy == NULL) {
		tk_seterr(err, errlen, "%s: out of memory", label);
		return -1;
	}
	memcpy(copy, key, len);
	copy[len] = '\0';
	pk = tk_keyfile_parse(copy, len, &kid, &jalg, why, sizeof(why));
	tk_wipe(copy, len);
	free(copy);
	if (pk == NULL) {
		tk_seterr(err, errlen, "%s: %s", label, why[0] ? why : "cannot load the key");
		ERR_clear_error();
		return -1;
	}
	return add_pkey(s, pk, kid, jalg, want_kid, label, err, errlen);
}

int tk_signer_set_active(tk_signer *s, const char *kid, char *err, size_t errlen)
{
	int i;

	if (s == NULL || kid == NULL) {
		tk_seterr(err, errlen, "no signer or kid given");
		return -1;
	}
	i = find_kid(s, kid);
	if (i < 0) {
		tk_seterr(err, errlen, "no signing key has kid \"%.*s\"", TK_KID_MAX, kid);
		return -1;
	}
	atomic_store(&s->st->active, (size_t)i);
	return 0;
}

void tk_signer_clear_active(tk_signer *s)
{
	if (s != NULL)
		atomic_store(&s->st->active, (size_t)SIZE_MAX);
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

static const struct signing_key *active_key(const tk_signer *s)
{
	size_t i;

	if (s == NULL || s->n == 0)
		return NULL;
	i = atomic_load(&s->st->active);
	return i < s->n ? &s->keys[i] : NULL;
}

const char *tk_signer_active_kid(const tk_signer *s)
{
	const struct signing_key *k = active_key(s);
	return k ? k->kid : NULL;
}

const char *tk_signer_active_alg(const tk_signer *s)
{
	const struct signing_key *k = active_key(s);
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

