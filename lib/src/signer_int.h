/*
 * signer_int.h - what signer.c, mint.c and keyfile.c share (internal: not
 * installed, not exported from the shared library).
 */
#ifndef TOKEND_SIGNER_INT_H
#define TOKEND_SIGNER_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <jwt.h>
#include <openssl/evp.h>

#include "internal.h"
#include "tokend/signer.h"

/* One signing key of a signer (the server's API-key record is another thing:
 * tk_apikey). */
struct signing_key {
	char *kid;
	const char *alg_name;          /* static string */
	jwt_alg_t alg;
	char *pub_json;                /* public JWK as published */
	const jwk_item_t *item;        /* the private key, owned by tk_signer.set */
};

/* The part of a signer that changes after it is built. Held by pointer so
 * that functions taking a const tk_signer may still update it. */
struct signer_state {
	atomic_size_t active;          /* index of the key that signs */
	atomic_bool frozen;            /* a minter exists: no more keys */
};

struct tk_signer {
	jwk_set_t *set;
	struct signing_key keys[TK_SIGNER_MAX_KEYS];
	size_t n;
	struct signer_state *st;
};

/* A libjwt builder for key `k`: key set once, iat off (the claims carry it),
 * typ "at+jwt" and kid fixed. NULL with why set. Freed by jwt_builder_free. */
TK_INTERNAL jwt_builder_t *tk_signing_key_builder(const struct signing_key *k, char *why,
                                                  size_t wl);

/* Read and parse the private key in `path` (keyfile.c). On success *kid and
 * *alg are the JWK's own (malloc'd) or NULL. NULL with why set. */
TK_INTERNAL EVP_PKEY *tk_keyfile_load(const char *path, char **kid, char **alg, char *why,
                                      size_t wl);

/* The same for a key held in memory: `len` bytes at `buf`, which must be
 * followed by a NUL (buf[len] == 0). */
TK_INTERNAL EVP_PKEY *tk_keyfile_parse(const char *buf, size_t len, char **kid, char **alg,
                                       char *why, size_t wl);

/* Full OpenSSL validation of a private key: public part well formed, private
 * part in range, the two belonging together. 0, or -1 with why set. */
TK_INTERNAL int tk_keyfile_check(EVP_PKEY *pk, char *why, size_t wl);

#endif
