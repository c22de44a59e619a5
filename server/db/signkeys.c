/*
 * signkeys.c - signing keys held in PostgreSQL (signkeys.h).
 */
#include "signkeys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "db.h"

int64_t tk_signkeys_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tk_signkeys_kek_id(const unsigned char kek[TK_KEK_LEN], char out[TK_KEK_ID_LEN + 1])
{
	static const char label[] = "tokend signing key KEK id v1";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (!HMAC(EVP_sha256(), kek, TK_KEK_LEN, (const unsigned char *)label, sizeof(label) - 1, md, &mdlen))
		memset(md, 0, sizeof(md));
	tk_b64url_encode(md, 16, out);
}

void tk_signkeys_rows_free(tk_signkey_rows *rows)
{
	for (size_t i = 0; rows && i < rows->n; i++)
		free(rows->row[i].ct);
	if (rows) {
		free(rows->row);
		memset(rows, 0, sizeof(*rows));
	}
}

static int64_t col_ms(const PGresult *r, int i, int col)
{
	return PQgetisnull(r, i, col) ? 0 : strtoll(PQgetvalue(r, i, col), NULL, 10);
}

/* Hex text (the row's encode(..., 'hex')) into `out` of exactly `n` bytes. */
static int unhex(const char *s, unsigned char *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = tk_hex_digit((unsigned char)s[2 * i]), lo = tk_hex_digit((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi * 16 + lo);
	}
	return 0;
}

#define MS(col) "(extract(epoch FROM " col ") * 1000)::bigint"

int tk_signkeys_fetch(PGconn *c, tk_signkey_rows *rows, char *err, size_t errlen)
{
	memset(rows, 0, sizeof(*rows));
	PGresult *r = tk_db_exec(c,
		"SELECT kid, alg, kek_id, encode(ciphertext, 'hex'), encode(nonce, 'hex'), encode(tag, 'hex'),"
		" initial, " MS("publish_at") ", " MS("sign_from") ", " MS("signing_until") ", "
		MS("retire_after") " FROM signing_keys WHERE retired_at IS NULL ORDER BY sign_from, kid", 0, NULL);
	if (!tk_db_ok(r)) {
		snprintf(err, errlen, "cannot read the signing keys: %s", tk_db_error(c, r));
		PQclear(r);
		return -1;
	}
	int n = PQntuples(r);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	rows->row = calloc(n > 0 ? (size_t)n : 1, sizeof(*rows->row));
	if (!rows->row || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (int i = 0; i < n; i++) {
		tk_signkey_row *k = &rows->row[i];
		rows->n = (size_t)i + 1;
		const char *ct = PQgetvalue(r, i, 3);
		size_t clen = strlen(ct) / 2;
		if (strlen(PQgetvalue(r, i, 0)) > TK_THUMBPRINT_LEN || strlen(PQgetvalue(r, i, 1)) >= sizeof(k->alg) ||
		    strlen(PQgetvalue(r, i, 2)) > TK_KEK_ID_LEN || PQgetisnull(r, i, 3) || clen == 0 ||
		    !(k->ct = malloc(clen)) || unhex(ct, k->ct, clen) != 0 ||
		    unhex(PQgetvalue(r, i, 4), k->nonce, sizeof(k->nonce)) != 0 ||
		    unhex(PQgetvalue(r, i, 5), k->tag, sizeof(k->tag)) != 0) {
			snprintf(err, errlen, "signing key row %d is malformed", i + 1);
			goto fail;
		}
		k->ctlen = clen;
		snprintf(k->kid, sizeof(k->kid), "%s", PQgetvalue(r, i, 0));
		snprintf(k->alg, sizeof(k->alg), "%s", PQgetvalue(r, i, 1));
		snprintf(k->kek_id, sizeof(k->kek_id), "%s", PQgetvalue(r, i, 2));
		k->initial = PQgetvalue(r, i, 6)[0] == 't';
		k->publish_at = col_ms(r, i, 7);
		k->sign_from = col_ms(r, i, 8);
		k->signing_until = col_ms(r, i, 9);
		k->retire_after = col_ms(r, i, 10);
		for (int col = 0; col < 11; col++)
			EVP_DigestUpdate(md, PQgetvalue(r, i, col), strlen(PQgetvalue(r, i, col)) + 1);
	}
	EVP_DigestFinal_ex(md, rows->digest, NULL);
	EVP_MD_CTX_free(md);
	PQclear(r);
	return 0;
fail:
	EVP_MD_CTX_free(md);
	PQclear(r);
	tk_signkeys_rows_free(rows);
	return -1;
}

int tk_signkeys_published(const tk_signkey_row *r, int64_t now)
{
	return r->publish_at <= now && (r->retire_after == 0 || now < r->retire_after);
}

int tk_signkeys_may_sign(const tk_signkey_row *r, int64_t now, int64_t max_age_ms)
{
	/* The invariant: published for jwks_max_age before it signs, so that no
	 * verifier holds a cached JWKS without it. Checked here, whatever the row's
	 * sign_from says. */
	if (!r->initial && now < r->publish_at + max_age_ms)
		return 0;
	return tk_signkeys_published(r, now) && r->sign_from <= now &&
	       (r->signing_until == 0 || now < r->signing_until);
}

static void later(int64_t *next, int64_t now, int64_t t)
{
	if (t > now && t < *next)
		*next = t;
}

int tk_signkeys_choose(const tk_signkey_rows *rows, int64_t now, int64_t max_age_ms, int64_t *next)
{
	int best = -1;
	int64_t nx = INT64_MAX;
	for (size_t i = 0; i < rows->n; i++) {
		const tk_signkey_row *r = &rows->row[i];
		later(&nx, now, r->publish_at);
		later(&nx, now, r->sign_from);
		if (!r->initial)
			later(&nx, now, r->publish_at + max_age_ms);
		if (r->signing_until)
			later(&nx, now, r->signing_until);
		if (r->retire_after)
			later(&nx, now, r->retire_after);
		if (tk_signkeys_may_sign(r, now, max_age_ms) &&
		    (best < 0 || r->sign_from > rows->row[best].sign_from))
			best = (int)i;
	}
	if (next)
		*next = nx;
	return best;
}

/* The associated data of a row's ciphertext: "kid\0alg". */
static size_t aad_of(const char *kid, const char *alg, char *out, size_t outlen)
{
	size_t kl = strlen(kid), al = strlen(alg);
	if (kl + 1 + al > outlen)
		return 0;
	memcpy(out, kid, kl);
	out[kl] = '\0';
	memcpy(out + kl + 1, alg, al);
	return kl + 1 + al;
}

tk_keyset *tk_signkeys_keyset(const tk_config *cfg, const unsigned char kek[TK_KEK_LEN],
                              const tk_signkey_rows *rows, int64_t now, char *err, size_t errlen)
{
	char kek_id[TK_KEK_ID_LEN + 1], aad[80], kerr[512];
	tk_signer *s = tk_signer_new();
	unsigned char *pt = NULL;
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	tk_signkeys_kek_id(kek, kek_id);
	int active = tk_signkeys_choose(rows, now, cfg->jwks_max_age * 1000, NULL);
	for (size_t i = 0; i < rows->n; i++) {
		const tk_signkey_row *r = &rows->row[i];
		if (!tk_signkeys_published(r, now))
			continue;
		if (strcmp(r->kek_id, kek_id) != 0) {
			snprintf(err, errlen, "signing key %s is encrypted under another key-encryption key "
			         "(id %s; the configured one has id %s): configure that key, or run "
			         "`tokend signing-key rewrap`", r->kid, r->kek_id, kek_id);
			goto fail;
		}
		size_t al = aad_of(r->kid, r->alg, aad, sizeof(aad));
		pt = malloc(r->ctlen + 1);
		if (!pt || al == 0 ||
		    tk_aead_open(kek, aad, al, r->ct, r->ctlen, r->nonce, r->tag, pt) != 0) {
			snprintf(err, errlen, "signing key %s does not decrypt under the configured key-encryption "
			         "key (a wrong key, or an altered row)", r->kid);
			goto fail;
		}
		char label[80];
		snprintf(label, sizeof(label), "signing key %s", r->kid);
		int rc = tk_signer_add_key(s, (const char *)pt, r->ctlen, r->kid, label, kerr, sizeof(kerr));
		tk_wipe(pt, r->ctlen);
		free(pt);
		pt = NULL;
		if (rc != 0) {
			snprintf(err, errlen, "%s", kerr);
			goto fail;
		}
		const char *alg = NULL;
		tk_signer_key_at(s, tk_signer_count(s) - 1, NULL, &alg);
		if (!alg || strcmp(alg, r->alg) != 0) {
			snprintf(err, errlen, "signing key %s is not an %s key", r->kid, r->alg);
			goto fail;
		}
	}
	if (active >= 0) {
		if (tk_signer_set_active(s, rows->row[active].kid, kerr, sizeof(kerr)) != 0) {
			snprintf(err, errlen, "%s", kerr);
			goto fail;
		}
	} else {
		tk_signer_clear_active(s);
	}
	return tk_keyset_from_signer(cfg, s, err, errlen);
fail:
	if (pt)
		free(pt);
	tk_signer_free(s);
	return NULL;
}

/* "\\x<hex>" for a bytea parameter. malloc'd. */
static char *bytea_param(const unsigned char *p, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	char *s = malloc(2 * n + 3);
	if (!s)
		return NULL;
	s[0] = '\\';
	s[1] = 'x';
	for (size_t i = 0; i < n; i++) {
		s[2 + 2 * i] = hx[p[i] >> 4];
		s[3 + 2 * i] = hx[p[i] & 15];
	}
	s[2 + 2 * n] = '\0';
	return s;
}

int tk_signkeys_generate(PGconn *c, const tk_config *cfg, const unsigned char kek[TK_KEK_LEN],
                         const char *alg, int scheduled, char **json_out, char *err, size_t errlen)
{
	char kid[TK_THUMBPRINT_LEN + 1], kek_id[TK_KEK_ID_LEN + 1], aad[80];
	char pre[32], rot[32], tail[32];
	unsigned char nonce[TK_AEAD_NONCE_LEN], tag[TK_AEAD_TAG_LEN], *ct = NULL;
	char *pub = NULL, *ctp = NULL, *np = NULL, *tp = NULL;
	int rc = -1;

	if (json_out)
		*json_out = NULL;
	char *priv = tk_signing_key_generate(alg, kid, &pub, err, errlen);
	if (!priv)
		return -1;
	size_t plen = strlen(priv), al = aad_of(kid, alg, aad, sizeof(aad));
	ct = malloc(plen);
	if (!ct || al == 0 || tk_aead_seal(kek, aad, al, priv, plen, ct, nonce, tag) != 0) {
		snprintf(err, errlen, "cannot encrypt the new signing key");
		goto out;
	}
	tk_signkeys_kek_id(kek, kek_id);
	ctp = bytea_param(ct, plen);
	np = bytea_param(nonce, sizeof(nonce));
	tp = bytea_param(tag, sizeof(tag));
	if (!ctp || !np || !tp) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	snprintf(pre, sizeof(pre), "%lld seconds", (long long)(cfg->jwks_max_age + cfg->signing_key_margin));
	snprintf(rot, sizeof(rot), "%lld seconds", (long long)cfg->signing_key_rotation);
	snprintf(tail, sizeof(tail), "%lld seconds",
	         (long long)(cfg->token_lifetime_max + (cfg->signing_key_margin > 0 ? cfg->signing_key_margin : 1)));
	const char *p[] = { kid, alg, pub, ctp, np, tp, kek_id, pre,
	                    scheduled && cfg->signing_key_rotation > 0 ? rot : NULL, tail };
	PGresult *r = tk_db_exec(c, "SELECT tokend_signing_key_add($1, $2, $3, $4::bytea, $5::bytea, $6::bytea,"
	                            " $7, $8::interval, $9::interval, $10::interval)::text", 10, p);
	if (!tk_db_ok(r) || PQntuples(r) != 1) {
		snprintf(err, errlen, "%s", tk_db_error(c, r));
		PQclear(r);
		goto out;
	}
	if (json_out)
		*json_out = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	rc = 0;
out:
	tk_wipe(priv, plen);
	free(priv);
	if (ct) {
		tk_wipe(ct, plen);
		free(ct);
	}
	free(pub);
	free(ctp);
	free(np);
	free(tp);
	return rc;
}

int64_t tk_signkeys_next_step(const tk_config *cfg, const tk_signkey_rows *rows, int64_t now)
{
	int64_t due = INT64_MAX, lead = (cfg->jwks_max_age + cfg->signing_key_margin) * 1000;
	const tk_signkey_row *cur = NULL;
	int waiting = 0;
	for (size_t i = 0; i < rows->n; i++) {
		const tk_signkey_row *r = &rows->row[i];
		if (r->retire_after && r->retire_after < due)
			due = r->retire_after;
		if (r->sign_from > now)
			waiting = 1;
		if (!r->signing_until && (!cur || r->sign_from > cur->sign_from))
			cur = r;
	}
	if (cfg->signing_key_rotation > 0 && cur && !waiting) {
		int64_t t = cur->sign_from + cfg->signing_key_rotation * 1000 - lead;
		if (t < due)
			due = t;
	}
	return due;
}

static int exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = tk_db_exec(c, sql, 0, NULL);
	int ok = tk_db_ok(r);
	if (!ok)
		snprintf(err, errlen, "%s", tk_db_error(c, r));
	PQclear(r);
	return ok ? 0 : -1;
}

int tk_signkeys_rotate(PGconn *c, const tk_config *cfg, const unsigned char kek[TK_KEK_LEN],
                       int empty_ok, int64_t delay_ms, char *did, size_t didlen,
                       char *err, size_t errlen)
{
	tk_signkey_rows rows = { 0 };
	int changed = 0;
	size_t dl = 0;
	did[0] = '\0';
	if (exec_ok(c, "BEGIN", err, errlen) != 0)
		return -1;
	PGresult *r = tk_db_exec(c, empty_ok ? "SELECT pg_advisory_xact_lock(" TK_SIGNKEYS_LOCK "), true"
	                                     : "SELECT pg_try_advisory_xact_lock(" TK_SIGNKEYS_LOCK ")", 0, NULL);
	if (!tk_db_ok(r) || PQntuples(r) != 1) {
		snprintf(err, errlen, "%s", tk_db_error(c, r));
		PQclear(r);
		goto fail;
	}
	int locked = PQgetvalue(r, 0, PQnfields(r) - 1)[0] == 't';
	PQclear(r);
	if (!locked) {
		exec_ok(c, "ROLLBACK", err, errlen);
		return 0;        /* another instance is doing the step */
	}
	if (tk_signkeys_fetch(c, &rows, err, errlen) != 0)
		goto fail;
	int64_t now = tk_signkeys_now();
	/* What is due: (c) keys whose last token has expired leave the JWKS for
	 * good; (a) the next key, jwks_max_age + margin before the current one's
	 * time, or the initial key of an empty table. */
	int64_t lead = (cfg->jwks_max_age + cfg->signing_key_margin) * 1000;
	const tk_signkey_row *cur = NULL;
	int waiting = 0, live = 0, retire = 0;
	for (size_t i = 0; i < rows.n; i++) {
		const tk_signkey_row *k = &rows.row[i];
		if (k->retire_after && k->retire_after <= now) {
			retire = 1;
			continue;
		}
		live++;
		if (k->sign_from > now)
			waiting = 1;
		if (!k->signing_until && (!cur || k->sign_from > cur->sign_from))
			cur = k;
	}
	int gen = (live == 0 && empty_ok) ||
	          (cfg->signing_key_rotation > 0 && cur && !waiting &&
	           now >= cur->sign_from + cfg->signing_key_rotation * 1000 - lead);
	/* Tests: hold the lock with the step decided and nothing written yet. */
	if ((retire || gen) && delay_ms > 0) {
		struct timespec ts = { (time_t)(delay_ms / 1000), (long)(delay_ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	if (retire) {
		r = tk_db_exec(c, "SELECT tokend_signing_key_retire_due()", 0, NULL);
		if (!tk_db_ok(r)) {
			snprintf(err, errlen, "retire: %s", tk_db_error(c, r));
			PQclear(r);
			goto fail;
		}
		dl += (size_t)snprintf(did + dl, didlen > dl ? didlen - dl : 0, "retired %s key(s); ",
		                       PQgetvalue(r, 0, 0));
		PQclear(r);
		changed = 1;
	}
	if (gen) {
		char *json = NULL;
		if (tk_signkeys_generate(c, cfg, kek, cfg->signing_key_alg, 1, &json, err, errlen) != 0)
			goto fail;
		snprintf(did + dl, didlen > dl ? didlen - dl : 0, "generated %s",
		         json ? json : "a key");
		free(json);
		changed = 1;
	}
	tk_signkeys_rows_free(&rows);
	if (exec_ok(c, "COMMIT", err, errlen) != 0)
		return -1;
	return changed;
fail:
	tk_signkeys_rows_free(&rows);
	{
		char e2[64];
		exec_ok(c, "ROLLBACK", e2, sizeof(e2));
	}
	return -1;
}

int tk_signkeys_rewrap(PGconn *c, const unsigned char kek[TK_KEK_LEN],
                       const unsigned char new_kek[TK_KEK_LEN], char *err, size_t errlen)
{
	tk_signkey_rows rows = { 0 };
	char old_id[TK_KEK_ID_LEN + 1], new_id[TK_KEK_ID_LEN + 1], aad[80], kerr[512];
	unsigned char *pt = NULL, *ct = NULL, nonce[TK_AEAD_NONCE_LEN], tag[TK_AEAD_TAG_LEN];
	size_t len = 0;
	int n = 0;
	tk_signkeys_kek_id(kek, old_id);
	tk_signkeys_kek_id(new_kek, new_id);
	if (exec_ok(c, "BEGIN", err, errlen) != 0)
		return -1;
	if (exec_ok(c, "SELECT pg_advisory_xact_lock(" TK_SIGNKEYS_LOCK ")", err, errlen) != 0 ||
	    tk_signkeys_fetch(c, &rows, err, errlen) != 0)
		goto fail;
	for (size_t i = 0; i < rows.n; i++) {
		const tk_signkey_row *r = &rows.row[i];
		if (strcmp(r->kek_id, old_id) != 0) {
			snprintf(err, errlen, "signing key %s is encrypted under another key-encryption key (id %s; "
			         "the configured one has id %s): nothing changed", r->kid, r->kek_id, old_id);
			goto fail;
		}
		size_t al = aad_of(r->kid, r->alg, aad, sizeof(aad));
		len = r->ctlen;
		pt = malloc(len + 1);
		ct = malloc(len);
		if (!pt || !ct || al == 0 || tk_aead_open(kek, aad, al, r->ct, len, r->nonce, r->tag, pt) != 0) {
			snprintf(err, errlen, "signing key %s does not decrypt under the configured key-encryption "
			         "key: nothing changed", r->kid);
			goto fail;
		}
		tk_signer *s = tk_signer_new();
		int ok = s && tk_signer_add_key(s, (const char *)pt, len, r->kid, r->kid, kerr, sizeof(kerr)) == 0;
		tk_signer_free(s);
		if (!ok) {
			snprintf(err, errlen, "%s: nothing changed", s ? kerr : "out of memory");
			goto fail;
		}
		if (tk_aead_seal(new_kek, aad, al, pt, len, ct, nonce, tag) != 0) {
			snprintf(err, errlen, "cannot encrypt signing key %s: nothing changed", r->kid);
			goto fail;
		}
		char *cp = bytea_param(ct, len), *np = bytea_param(nonce, sizeof(nonce)),
		     *tp = bytea_param(tag, sizeof(tag));
		const char *p[] = { r->kid, cp, np, tp, new_id };
		PGresult *res = cp && np && tp ? tk_db_exec(c, "SELECT tokend_signing_key_rewrap($1, $2::bytea, $3::bytea,"
		                                               " $4::bytea, $5)", 5, p) : NULL;
		free(cp);
		free(np);
		free(tp);
		if (!res || !tk_db_ok(res)) {
			snprintf(err, errlen, "%s: nothing changed", res ? tk_db_error(c, res) : "out of memory");
			PQclear(res);
			goto fail;
		}
		PQclear(res);
		tk_wipe(pt, len);
		free(pt);
		pt = NULL;
		free(ct);
		ct = NULL;
		n++;
	}
	tk_signkeys_rows_free(&rows);
	if (exec_ok(c, "COMMIT", err, errlen) != 0)
		return -1;
	return n;
fail:
	if (pt) {
		tk_wipe(pt, len);
		free(pt);
	}
	free(ct);
	tk_signkeys_rows_free(&rows);
	{
		char e2[64];
		exec_ok(c, "ROLLBACK", e2, sizeof(e2));
	}
	return -1;
}
