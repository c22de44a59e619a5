/*
 * mint.c - RFC 9068 access tokens: a tk_minter holds one libjwt builder per
 * signing key (keyed once, tk_signing_key_builder); a mint fills the claims in
 * libjwt's generate callback and signs with the signer's active key.
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
#include <openssl/err.h>

#define JTI_RAW_LEN   16            /* 128 bits */
#define WHY_LEN       320

#if TK_JTI_LEN != 22
#error "TK_JTI_LEN must be the base64url length of 16 bytes"
#endif

struct tk_minter {
	const tk_signer *s;
	size_t n;
	jwt_builder_t **b;             /* one per key, same order as s->keys */
	/* State of the mint in progress, read by mint_cb. */
	const tk_token_claims *cur;
	const char *jti;
	const char *raw_typ;           /* tk_minter_sign: header typ and claims */
	const char *raw_claims;
	char cb_err[160];
};

static int mint_cb(jwt_t *jwt, jwt_config_t *cfg);

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
	if (m == NULL || (m->b = calloc(s->n, sizeof(*m->b))) == NULL) {
		free(m);
		tk_seterr(err, errlen, "out of memory");
		return NULL;
	}
	m->s = s;
	m->n = s->n;
	for (size_t i = 0; i < s->n; i++) {
		m->b[i] = tk_signing_key_builder(&s->keys[i], why, sizeof(why));
		if (m->b[i] == NULL || jwt_builder_setcb(m->b[i], mint_cb, m) != 0) {
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

/* The members of the JSON object `json` as claims, none replacing a claim
 * already set (libjwt: a JSON value without a name, replace off). */
static int claims_merge(jwt_t *jwt, const char *json)
{
	jwt_value_t v;

	memset(&v, 0, sizeof(v));
	v.type = JWT_VALUE_JSON;
	v.name = NULL;
	/* libjwt reads json_val on a set (its field is not const-qualified). */
	memcpy(&v.json_val, &json, sizeof(json));
	v.replace = 0;
	return jwt_claim_set(jwt, &v) == JWT_VALUE_ERR_NONE ? 0 : -1;
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

/* "status":{"status_list":{"idx":idx,"uri":uri}} (Token Status List). */
static int claim_status(jwt_t *jwt, const char *uri, int64_t idx)
{
	json_t *o = json_pack("{s:{s:I,s:s}}", "status_list", "idx", (json_int_t)idx, "uri", uri);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	jwt_value_t v;
	int rc = -1;

	if (text != NULL) {
		memset(&v, 0, sizeof(v));
		v.type = JWT_VALUE_JSON;
		v.json_val = text;
		rc = claim_set(jwt, &v, "status");
	}
	free(text);
	json_decref(o);
	return rc;
}

/* libjwt calls this on the fresh jwt_t of every generate: the claims are
 * exactly those of the mint in progress, never left over from another. */
static int mint_cb(jwt_t *jwt, jwt_config_t *cfg)
{
	tk_minter *m = cfg->ctx;
	const tk_token_claims *c = m ? m->cur : NULL;
	const char *bad = NULL;

	if (m != NULL && m->raw_claims != NULL) {
		jwt_value_t h;

		memset(&h, 0, sizeof(h));
		h.type = JWT_VALUE_STR;
		h.name = "typ";
		h.str_val = m->raw_typ;
		h.replace = 1;
		if (jwt_claim_del(jwt, NULL) != JWT_VALUE_ERR_NONE ||
		    jwt_header_set(jwt, &h) != JWT_VALUE_ERR_NONE ||
		    claims_merge(jwt, m->raw_claims) != 0) {
			snprintf(m->cb_err, sizeof(m->cb_err), "cannot set the header or claims");
			return 1;
		}
		return 0;
	}
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
	else if (c->env != NULL && claim_str(jwt, "env", c->env) != 0)
		bad = "env";
	else if (c->status_uri != NULL && c->status_uri[0] != '\0' &&
	         claim_status(jwt, c->status_uri, c->status_idx) != 0)
		bad = "status";
	else if (c->extra != NULL && c->extra[0] != '\0' && claims_merge(jwt, c->extra) != 0)
		bad = "(custom claims)";
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
	if (c->status_uri != NULL && c->status_uri[0] != '\0' && c->status_idx < 0)
		return "status_idx must not be negative";
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
	b = m->b[idx];
	if (tk_random_bytes(raw, sizeof(raw)) != 0) {
		tk_seterr(err, errlen, "CSPRNG failure: cannot make a jti, no token issued");
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
		tk_seterr(err, errlen, "cannot mint token: %s",
		       m->cb_err[0] ? m->cb_err : jwt_builder_error_msg(b));
		jwt_builder_error_clear(b);
		ERR_clear_error();
		return NULL;
	}
	if (strlen(tok) > TK_TOKEN_MAX) {
		/* Larger than introspection, revocation and verifiers accept: refuse
		 * to issue what nobody could use. */
		tk_seterr(err, errlen, "the token would be longer than %d bytes", TK_TOKEN_MAX);
		free(tok);
		return NULL;
	}
	if (jti_out != NULL)
		memcpy(jti_out, jti, sizeof(jti));
	return tok;
}

char *tk_minter_sign(tk_minter *m, const char *typ, const char *claims_json, size_t max_len,
                     char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *o;
	jwt_builder_t *b;
	size_t idx;
	char *tok;

	if (m == NULL || typ == NULL || typ[0] == '\0' || claims_json == NULL) {
		tk_seterr(err, errlen, "no minter, typ or claims given");
		return NULL;
	}
	/* The claims must be one JSON object (libjwt would take other JSON). */
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
	b = m->b[idx];
	m->raw_typ = typ;
	m->raw_claims = claims_json;
	m->cb_err[0] = '\0';
	jwt_builder_error_clear(b);
	tok = jwt_builder_generate(b);
	m->raw_typ = NULL;
	m->raw_claims = NULL;
	if (tok == NULL) {
		tk_seterr(err, errlen, "cannot sign: %s",
		          m->cb_err[0] ? m->cb_err : jwt_builder_error_msg(b));
		jwt_builder_error_clear(b);
		ERR_clear_error();
		return NULL;
	}
	if (max_len > 0 && strlen(tok) > max_len) {
		tk_seterr(err, errlen, "the signed token would be longer than %zu bytes", max_len);
		free(tok);
		return NULL;
	}
	return tok;
}
