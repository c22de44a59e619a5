/*
 * keyset.c - signing keys, JWKS and verifiers as one replaceable set (keyset.h).
 */
#include "keyset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <tokend/crypto.h>

static int load_signer(tk_keyset *ks, const tk_config *cfg, char *err, size_t errlen)
{
	ks->signer = tk_signer_new();
	if (!ks->signer) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	char *list = strdup(cfg->signing_keys), *save = NULL;
	if (!list) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int n = 0;
	for (char *tok = strtok_r(list, " ,\t", &save); tok; tok = strtok_r(NULL, " ,\t", &save)) {
		char *path = tk_config_resolve(cfg, tok);
		char kerr[512];
		int rc = path ? tk_signer_add_file(ks->signer, path, kerr, sizeof(kerr)) : -1;
		free(path);
		if (rc != 0) {
			snprintf(err, errlen, "signing_keys: %s", path ? kerr : "out of memory");
			free(list);
			return -1;
		}
		n++;
	}
	free(list);
	if (n == 0) {
		snprintf(err, errlen, "signing_keys: no signing key configured (an ES256 key: "
		         "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem)");
		return -1;
	}
	if (*cfg->signing_key_active) {
		char kerr[256];
		if (tk_signer_set_active(ks->signer, cfg->signing_key_active, kerr, sizeof(kerr)) != 0) {
			snprintf(err, errlen, "signing_key_active: %s", kerr);
			return -1;
		}
	}
	return 0;
}

/* A verifier of our own tokens; `audience`: also require it in aud. */
static tk_verifier *own_verifier(const tk_keyset *ks, const tk_config *cfg, const char *audience,
                                 char *err, size_t errlen)
{
	char verr[256] = "out of memory";
	tk_verifier *v = tk_verifier_new();
	if (!v ||
	    tk_verifier_load_jwks(v, ks->jwks_body, ks->jwks_len, verr, sizeof(verr)) != 0 ||
	    tk_verifier_set_issuer(v, cfg->issuer, verr, sizeof(verr)) != 0 ||
	    (audience && tk_verifier_set_audience(v, audience, verr, sizeof(verr)) != 0) ||
	    /* Our own tokens on our own clock: no leeway (an expired token is inactive at once). */
	    tk_verifier_set_leeway(v, 0, verr, sizeof(verr)) != 0) {
		snprintf(err, errlen, "cannot build the token verifier: %s", verr);
		tk_verifier_free(v);
		return NULL;
	}
	return v;
}

tk_keyset *tk_keyset_load(const tk_config *cfg, char *err, size_t errlen)
{
	tk_keyset tmp = { 0 };
	if (load_signer(&tmp, cfg, err, errlen) != 0) {
		tk_signer_free(tmp.signer);
		return NULL;
	}
	return tk_keyset_from_signer(cfg, tmp.signer, err, errlen);
}

tk_keyset *tk_keyset_from_signer(const tk_config *cfg, tk_signer *signer, char *err, size_t errlen)
{
	tk_keyset *ks = calloc(1, sizeof(*ks));
	if (!ks) {
		tk_signer_free(signer);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&ks->refs, 1);
	ks->signer = signer;
	if (!signer || tk_signer_count(signer) == 0) {
		snprintf(err, errlen, "no signing key to publish");
		goto fail;
	}
	ks->jwks_body = tk_signer_jwks_json(ks->signer);
	if (!ks->jwks_body) {
		snprintf(err, errlen, "cannot build the JWKS");
		goto fail;
	}
	ks->jwks_len = strlen(ks->jwks_body);
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_Digest(ks->jwks_body, ks->jwks_len, md, &mdlen, EVP_sha256(), NULL);
	char b64[48];
	tk_b64url_encode(md, 16, b64);
	snprintf(ks->jwks_etag, sizeof(ks->jwks_etag), "\"%s\"", b64);
	/* Introspection and revocation verify our own tokens as a resource server
	 * would; the admin API also requires its audience (the issuer). */
	ks->verifier = own_verifier(ks, cfg, NULL, err, errlen);
	if (!ks->verifier)
		goto fail;
	ks->admin_verifier = own_verifier(ks, cfg, cfg->issuer, err, errlen);
	if (!ks->admin_verifier)
		goto fail;
	return ks;
fail:
	tk_keyset_release(ks);
	return NULL;
}

tk_keyset *tk_keyset_ref(tk_keyset *ks)
{
	if (ks)
		atomic_fetch_add(&ks->refs, 1);
	return ks;
}

void tk_keyset_release(tk_keyset *ks)
{
	if (!ks || atomic_fetch_sub(&ks->refs, 1) != 1)
		return;
	tk_verifier_free(ks->verifier);
	tk_verifier_free(ks->admin_verifier);
	free(ks->jwks_body);
	tk_signer_free(ks->signer);
	free(ks);
}
