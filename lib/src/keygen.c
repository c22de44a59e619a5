/*
 * keygen.c - new signing keys (tk_signing_key_generate, signer.h): generated
 * by OpenSSL from its CSPRNG, exported as a canonical private JWK whose kid
 * is its RFC 7638 thumbprint. The private JWK is the only copy handed out;
 * every intermediate buffer holding private material is wiped.
 */
#include "internal.h"
#include "jwk.h"
#include "signer_int.h"
#include "tokend/crypto.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

char *tk_signing_key_generate(const char *alg, char kid[TK_THUMBPRINT_LEN + 1], char **pub_json,
                              char *err, size_t errlen)
{
	char why[256] = "";
	tk_jwk_parts parts;
	EVP_PKEY *pk = NULL;
	char *priv = NULL;

	memset(&parts, 0, sizeof(parts));
	if (pub_json != NULL)
		*pub_json = NULL;
	if (kid != NULL)
		kid[0] = '\0';
	if (alg == NULL || kid == NULL || pub_json == NULL) {
		tk_seterr(err, errlen, "no algorithm or output given");
		return NULL;
	}
	if (strcmp(alg, "ES256") == 0)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else if (strcmp(alg, "EdDSA") == 0)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else if (strcmp(alg, "RS256") == 0)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	else {
		tk_seterr(err, errlen, "unknown signing algorithm \"%.16s\" (ES256, EdDSA or RS256)", alg);
		return NULL;
	}
	if (pk == NULL) {
		tk_seterr(err, errlen, "OpenSSL could not generate an %s key", alg);
		goto out;
	}
	if (tk_jwk_export(pk, &parts, why, sizeof(why)) != 0) {
		tk_seterr(err, errlen, "%s", why);
		goto out;
	}
	if (tk_jwk_parts_thumbprint(&parts, kid) != 0) {
		tk_seterr(err, errlen, "cannot compute the key's thumbprint");
		goto out;
	}
	*pub_json = tk_jwk_parts_json(&parts, kid, 0);
	priv = tk_jwk_parts_json(&parts, kid, 1);
	if (*pub_json == NULL || priv == NULL) {
		tk_seterr(err, errlen, "out of memory");
		free(*pub_json);
		*pub_json = NULL;
		tk_secret_free(priv);
		priv = NULL;
		kid[0] = '\0';
	}
out:
	tk_jwk_parts_release(&parts);
	EVP_PKEY_free(pk);
	ERR_clear_error();
	return priv;
}
