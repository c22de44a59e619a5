/*
 * keyset.h - the signing keys and everything derived from them (JWKS body
 * and ETag, the verifiers of our own tokens), as one reference-counted set
 * that SIGHUP can replace while the server runs.
 *
 * The server holds the current set; each worker holds a reference to the one
 * it uses, with a minter made from it, and moves to a newer set at the start
 * of its next request (a generation counter tells it one exists). A set is
 * freed when its last holder lets go, so a worker never sees a key vanish
 * under a request.
 */
#ifndef TOKEND_KEYSET_H
#define TOKEND_KEYSET_H

#include <stdatomic.h>
#include <stddef.h>

#include <tokend/signer.h>
#include <tokend/verify.h>

#include "config.h"

typedef struct tk_keyset {
	_Atomic int refs;
	tk_signer *signer;
	char *jwks_body;
	size_t jwks_len;
	char jwks_etag[72];
	tk_verifier *verifier;          /* our tokens: signature, issuer, no leeway */
	tk_verifier *admin_verifier;    /* the same, and aud must contain the issuer: bearer
	                                   credentials at tokend's own endpoints (admin API,
	                                   introspection) */
} tk_keyset;

/* Load cfg's signing_keys (paths relative to cfg's file) and active key, and
 * derive the rest. NULL with a message on any failure. */
tk_keyset *tk_keyset_load(const tk_config *cfg, char *err, size_t errlen);
/* The same from a built signer (taken over, freed on failure): the JWKS of
 * its keys, the ETag and the verifiers. The signer's active key may be none
 * (tk_signer_clear_active): the set then publishes and verifies, never signs. */
tk_keyset *tk_keyset_from_signer(const tk_config *cfg, tk_signer *signer, char *err, size_t errlen);
tk_keyset *tk_keyset_ref(tk_keyset *ks);
void tk_keyset_release(tk_keyset *ks);

#endif
