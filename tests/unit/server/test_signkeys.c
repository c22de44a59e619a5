/*
 * test_signkeys.c - the choice of the signing key among database-held keys
 * (db/signkeys.c): never a key published for less than jwks_max_age, whatever
 * its row's sign_from says; the published set at each moment; when the
 * choice changes next; when the next rotation step is due; and rows
 * decrypted into a key set only under the right key-encryption key.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "signkeys.h"
#include "unit.h"

#define S 1000   /* ms */

static tk_signkey_row row(const char *kid, int initial, int64_t publish, int64_t from, int64_t until,
                          int64_t retire)
{
	tk_signkey_row r;
	memset(&r, 0, sizeof(r));
	snprintf(r.kid, sizeof(r.kid), "%s", kid);
	snprintf(r.alg, sizeof(r.alg), "ES256");
	r.initial = initial;
	r.publish_at = publish;
	r.sign_from = from;
	r.signing_until = until;
	r.retire_after = retire;
	return r;
}

static void test_never_before_published_for_max_age(void)
{
	const int64_t J = 600 * S, t0 = 1000000 * S;
	/* A next key whose row says it signs at once (sign_from = publish_at). */
	tk_signkey_row rs[2] = {
		row("A", 1, t0, t0, t0 + 100 * S, t0 + 3000 * S),
		row("B", 0, t0 + 50 * S, t0 + 50 * S, 0, 0),
	};
	tk_signkey_rows rows = { rs, 2, { 0 } };
	int64_t next = 0;
	/* The initial key signs at once. */
	TEST_ASSERT(tk_signkeys_choose(&rows, t0, J, &next) == 0);
	/* B is published but not for J: A signs until its signing_until... */
	TEST_ASSERT(tk_signkeys_choose(&rows, t0 + 60 * S, J, &next) == 0);
	TEST_ASSERT(tk_signkeys_may_sign(&rs[1], t0 + 60 * S, J) == 0);
	TEST_ASSERT(tk_signkeys_published(&rs[1], t0 + 60 * S) == 1);
	TEST_ASSERT(next == t0 + 100 * S);
	/* ...then nothing may sign (not B) until B has been published for J. */
	for (int64_t t = t0 + 100 * S; t < t0 + 50 * S + J; t += 7 * S)
		TEST_ASSERT(tk_signkeys_choose(&rows, t, J, NULL) == -1);
	TEST_ASSERT(tk_signkeys_choose(&rows, t0 + 100 * S, J, &next) == -1);
	TEST_ASSERT(next == t0 + 50 * S + J);
	TEST_ASSERT(tk_signkeys_choose(&rows, t0 + 50 * S + J, J, NULL) == 1);
	/* A leaves the JWKS at retire_after, not before. */
	TEST_ASSERT(tk_signkeys_published(&rs[0], t0 + 3000 * S - 1) == 1);
	TEST_ASSERT(tk_signkeys_published(&rs[0], t0 + 3000 * S) == 0);
	/* Not yet published: neither published nor signing. */
	TEST_ASSERT(tk_signkeys_published(&rs[1], t0) == 0);
	TEST_ASSERT(tk_signkeys_may_sign(&rs[1], t0 + 50 * S + J, J + 1) == 0);
}

static void test_next_step(void)
{
	tk_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.jwks_max_age = 2;
	cfg.signing_key_margin = 1;
	cfg.signing_key_rotation = 6;
	const int64_t t0 = 5000 * S;
	tk_signkey_row rs[2] = {
		row("A", 1, t0, t0, 0, 0),
		row("B", 0, t0 + 3 * S, t0 + 6 * S, 0, 0),
	};
	tk_signkey_rows rows = { rs, 1, { 0 } };
	/* Generate the next key rotation - (jwks_max_age + margin) after A began. */
	TEST_ASSERT(tk_signkeys_next_step(&cfg, &rows, t0) == t0 + 3 * S);
	/* Manual: no step until a retirement is due. */
	cfg.signing_key_rotation = 0;
	TEST_ASSERT(tk_signkeys_next_step(&cfg, &rows, t0) == INT64_MAX);
	cfg.signing_key_rotation = 6;
	/* With B waiting, A ending at 6 s and retiring at 9 s: the retirement is next. */
	rs[0].signing_until = t0 + 6 * S;
	rs[0].retire_after = t0 + 9 * S;
	rows.n = 2;
	TEST_ASSERT(tk_signkeys_next_step(&cfg, &rows, t0 + 4 * S) == t0 + 9 * S);
}

static void test_keyset_needs_the_kek(void)
{
	tk_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.jwks_max_age = 600;
	char issuer[] = "https://issuer.example";
	cfg.issuer = issuer;
	unsigned char kek[TK_KEK_LEN], other[TK_KEK_LEN];
	memset(kek, 1, sizeof(kek));
	memset(other, 2, sizeof(other));
	char kid[TK_THUMBPRINT_LEN + 1], *pub = NULL, err[512], aad[80];
	char *priv = tk_signing_key_generate("ES256", kid, &pub, err, sizeof(err));
	TEST_ASSERT(priv != NULL);
	if (!priv)
		return;
	size_t len = strlen(priv);
	tk_signkey_row r = row(kid, 1, 1000, 1000, 0, 0);
	tk_signkeys_kek_id(kek, r.kek_id);
	size_t al = (size_t)snprintf(aad, sizeof(aad), "%s", kid) + 1;
	al += (size_t)snprintf(aad + al, sizeof(aad) - al, "ES256");
	r.ct = malloc(len);
	r.ctlen = len;
	TEST_ASSERT(tk_aead_seal(kek, aad, al, priv, len, r.ct, r.nonce, r.tag) == 0);
	tk_signkey_rows rows = { &r, 1, { 0 } };
	tk_keyset *ks = tk_signkeys_keyset(&cfg, kek, &rows, 2000, err, sizeof(err));
	TEST_ASSERT(ks != NULL);
	TEST_ASSERT(ks && strcmp(tk_signer_active_kid(ks->signer), kid) == 0);
	TEST_ASSERT(ks && strstr(ks->jwks_body, "\"d\"") == NULL);
	tk_keyset_release(ks);
	/* Another KEK: named by id, refused. */
	TEST_ASSERT(tk_signkeys_keyset(&cfg, other, &rows, 2000, err, sizeof(err)) == NULL);
	TEST_ASSERT(strstr(err, "another key-encryption key") != NULL);
	/* The right id but an altered ciphertext: refused. */
	r.ct[0] ^= 1;
	TEST_ASSERT(tk_signkeys_keyset(&cfg, kek, &rows, 2000, err, sizeof(err)) == NULL);
	TEST_ASSERT(strstr(err, "does not decrypt") != NULL);
	r.ct[0] ^= 1;
	/* Another row's kid (the ciphertext bound to A moved to B): refused. */
	r.kid[0] = r.kid[0] == 'A' ? 'B' : 'A';
	TEST_ASSERT(tk_signkeys_keyset(&cfg, kek, &rows, 2000, err, sizeof(err)) == NULL);
	tk_wipe(priv, len);
	free(priv);
	free(pub);
	free(r.ct);
}

int main(void)
{
	TEST_RUN(test_never_before_published_for_max_age);
	TEST_RUN(test_next_step);
	TEST_RUN(test_keyset_needs_the_kek);
	TEST_DONE();
}
