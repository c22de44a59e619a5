/*
 * verify_int.h - what verify.c shares with statuslist.c (internal: not
 * installed, not exported): the one JWS verification, so that a status list
 * token is checked by the same code and keys as an access token.
 */
#ifndef TOKEND_VERIFY_INT_H
#define TOKEND_VERIFY_INT_H

#include <stddef.h>

#include <jansson.h>

#include "internal.h"
#include "tokend/verify.h"

/* The document a JWS must be (its header "typ"). */
enum tk_jws_typ {
	TK_JWS_AT = 0,            /* at+jwt (RFC 9068 access token) */
	TK_JWS_STATUSLIST,        /* statuslist+jwt (Token Status List) */
};

struct vkey;

/*
 * Verify everything of `token` but its claims: at most max_len bytes, three
 * canonical base64url segments, the header (alg, crit, forbidden members,
 * typ `want`, kid of a key of `v`), the signature, the payload a JSON object.
 * TK_VERIFY_OK with *payload (the caller's: json_decref) and *key set, or a
 * tk_verify_result with err set and both NULL. `v` must have keys.
 */
TK_INTERNAL int tk_verify_jws(const tk_verifier *v, const char *token, size_t len,
                              size_t max_len, enum tk_jws_typ want, const struct vkey **key,
                              json_t **payload, char *err, size_t errlen);

/* The verifier's clock leeway in seconds, and its issuer (NULL: none set). */
TK_INTERNAL long tk_verifier_leeway(const tk_verifier *v);
TK_INTERNAL const char *tk_verifier_issuer(const tk_verifier *v);

#endif
