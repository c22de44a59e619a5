/*
 * keyfile.c - reading a signing key file: a regular file that others may not
 * read (its group may, tk_secret_file_mode_ok), of bounded size, holding one private key as a JWK (our own strict
 * parse, jwk.c) or a PEM (OpenSSL's decoder with a passphrase callback that
 * never prompts); and the full OpenSSL validation of the key read.
 *
 * Every buffer that held private material is wiped before it is freed.
 */
#include "internal.h"
#include "jwk.h"
#include "signer_int.h"
#include "tokend/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define KEY_FILE_MAX  (64 * 1024)   /* a PEM of RSA-8192 is ~6.5 KiB */

/* Wipe the text of a jansson string in place (before json_decref). */
static void json_string_wipe(json_t *v)
{
	if (v != NULL && json_is_string(v)) {
		char *p = (char *)(uintptr_t)json_string_value(v);
		tk_wipe(p, json_string_length(v));
	}
}

/* Full OpenSSL validation: public part well formed (point on the curve),
 * private part in range, and the two belonging together. */
int tk_keyfile_check(EVP_PKEY *pk, char *why, size_t wl)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	int ok = ctx != NULL && EVP_PKEY_check(ctx) == 1;
	char r[128];

	EVP_PKEY_CTX_free(ctx);
	if (!ok) {
		tk_seterr(why, wl, "key failed validation (%s): its public and private parts "
		       "do not match or it is malformed",
		       tk_ossl_reason(r, sizeof(r), "check failed"));
		return -1;
	}
	ERR_clear_error();
	return 0;
}

/* Read `path` into a NUL-terminated malloc'd buffer (caller wipes + frees). */
static char *read_key_file(const char *path, size_t *len_out, char *why, size_t wl)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	char eb[128];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		tk_seterr(why, wl, "cannot open: %s", strerror_r(errno, eb, sizeof(eb)));
		return NULL;
	}
	if (fstat(fd, &st) != 0) {
		tk_seterr(why, wl, "cannot stat: %s", strerror_r(errno, eb, sizeof(eb)));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		tk_seterr(why, wl, "not a regular file");
		goto fail;
	}
	if (tk_secret_file_mode_ok((unsigned int)st.st_mode, (long)st.st_uid, "private key file",
	                           why, wl) != 0)
		goto fail;
	if (st.st_size <= 0 || st.st_size > KEY_FILE_MAX) {
		tk_seterr(why, wl, st.st_size <= 0 ? "file is empty" : "file is too large for a key");
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		tk_seterr(why, wl, "out of memory");
		goto fail;
	}
	while (len < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			tk_seterr(why, wl, "cannot read: %s", strerror_r(errno, eb, sizeof(eb)));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	if (len == 0 || strlen(buf) != len) {
		tk_seterr(why, wl, len == 0 ? "file is empty" : "file contains NUL bytes");
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
		tk_seterr(why, wl, "out of memory");
		return NULL;
	}
	pk = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &asked);
	BIO_free(bio);
	if (pk == NULL) {
		if (asked || strstr(buf, "ENCRYPTED") != NULL) {
			ERR_clear_error();
			tk_seterr(why, wl, "private key is encrypted (passphrase-protected keys are not "
			       "supported; decrypt it with: openssl pkey -in FILE -out NEWFILE)");
		} else {
			tk_seterr(why, wl, "no usable PEM private key: a certificate or public key is "
			       "not enough (OpenSSL: %s)",
			       tk_ossl_reason(r, sizeof(r), "unrecognised content"));
		}
		return NULL;
	}
	ERR_clear_error();
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
		tk_seterr(why, wl, "invalid JSON at line %d: %s", jerr.line, jerr.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		tk_seterr(why, wl, "a JWK must be a JSON object");
		goto done;
	}
	if (json_object_get(o, "keys") != NULL) {
		tk_seterr(why, wl, "a JWK Set is not accepted: put one private JWK in each file");
		goto done;
	}
	kty = json_string_value(json_object_get(o, "kty"));
	if (kty == NULL) {
		tk_seterr(why, wl, "JWK has no string \"kty\"");
		goto done;
	}
	if (json_object_get(o, "d") == NULL) {
		tk_seterr(why, wl, "JWK holds no private key (\"d\"): a signing key file must");
		goto done;
	}
	v = json_object_get(o, "use");
	if (v != NULL && (!json_is_string(v) || strcmp(json_string_value(v), "sig") != 0)) {
		tk_seterr(why, wl, "JWK \"use\" must be \"sig\"");
		goto done;
	}
	v = json_object_get(o, "alg");
	if (v != NULL) {
		if (!json_is_string(v) || json_string_length(v) > 16) {
			tk_seterr(why, wl, "JWK \"alg\" is malformed");
			goto done;
		}
		*alg = strdup(json_string_value(v));
		if (*alg == NULL) {
			tk_seterr(why, wl, "out of memory");
			goto done;
		}
	}
	v = json_object_get(o, "kid");
	if (v != NULL) {
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
		    !tk_jwk_kid_ok(json_string_value(v))) {
			tk_seterr(why, wl, "JWK \"kid\" must be 1..%d printable ASCII characters "
			       "without '\"' or '\\'", TK_KID_MAX);
			goto done;
		}
		*kid = strdup(json_string_value(v));
		if (*kid == NULL) {
			tk_seterr(why, wl, "out of memory");
			goto done;
		}
	}
	if (strcmp(kty, "EC") == 0)
		pk = tk_jwk_ec(o, TK_JWK_PRIVATE, why, wl);
	else if (strcmp(kty, "OKP") == 0)
		pk = tk_jwk_okp(o, TK_JWK_PRIVATE, why, wl);
	else if (strcmp(kty, "RSA") == 0)
		pk = tk_jwk_rsa(o, TK_JWK_PRIVATE, why, wl);
	else if (strcmp(kty, "oct") == 0)
		tk_seterr(why, wl, "symmetric (\"oct\") keys are not accepted: tokens are signed "
		       "with an asymmetric key");
	else
		tk_seterr(why, wl, "JWK kty \"%.16s\" is not supported", kty);
done:
	if (pk == NULL) {
		free(*kid);
		free(*alg);
		*kid = NULL;
		*alg = NULL;
	}
	if (o != NULL && json_is_object(o)) {
		for (size_t i = 0; i < TK_JWK_RSA_PRIV_COUNT; i++)
			json_string_wipe(json_object_get(o, tk_jwk_rsa_private[i]));
	}
	json_decref(o);
	return pk;
}

EVP_PKEY *tk_keyfile_parse(const char *buf, size_t len, char **kid, char **alg, char *why,
                           size_t wl)
{
	size_t i = 0;

	*kid = NULL;
	*alg = NULL;
	if (buf == NULL || len == 0 || len > (size_t)KEY_FILE_MAX || memchr(buf, '\0', len) != NULL) {
		tk_seterr(why, wl, "not a key: empty, too large or holding NUL bytes");
		return NULL;
	}
	while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
		i++;
	if (i < len && buf[i] == '{')
		return load_jwk(buf, len, kid, alg, why, wl);
	if (len - i > 11 && strncmp(buf + i, "-----BEGIN ", 11) == 0)
		return load_pem(buf, len, why, wl);
	tk_seterr(why, wl, "neither a JWK (JSON) nor a PEM private key");
	return NULL;
}

EVP_PKEY *tk_keyfile_load(const char *path, char **kid, char **alg, char *why, size_t wl)
{
	size_t len = 0;
	char *buf = read_key_file(path, &len, why, wl);
	EVP_PKEY *pk;

	*kid = NULL;
	*alg = NULL;
	if (buf == NULL)
		return NULL;
	pk = tk_keyfile_parse(buf, len, kid, alg, why, wl);
	tk_wipe(buf, len);
	free(buf);
	return pk;
}
