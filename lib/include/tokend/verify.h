/*
 * verify.h - offline verification of tokend access tokens (RFC 9068 JWTs)
 * for resource servers.
 *
 * A tk_verifier holds a JWK Set of public keys and the expectations a token
 * must meet: issuer, optional audience, required scopes, clock leeway and the
 * allowed algorithms. It is configured once, then shared by any number of
 * threads that call tk_verify concurrently.
 *
 *   tk_verifier *v = tk_verifier_new();
 *   tk_verifier_load_jwks(v, jwks_json, jwks_len, err, sizeof err);
 *   tk_verifier_set_issuer(v, "https://auth.example.com", err, sizeof err);
 *   tk_verifier_set_audience(v, "https://api.example.com", err, sizeof err);
 *   tk_verifier_set_scopes(v, "orders:read", err, sizeof err);
 *   ...
 *   tk_claims c;
 *   int rc = tk_verify(v, token, token_len, &c, err, sizeof err);
 *   if (rc == TK_VERIFY_OK) { use c.sub, c.scope, c.json ...; tk_claims_release(&c); }
 *   else log("invalid token: %s (%s)", tk_verify_strerror(rc), err);
 *
 * What a token must be to verify (every check below has its own error code;
 * the first failing check is reported):
 *
 *   Before any signature work, from the token text alone:
 *     - at most TK_VERIFY_TOKEN_MAX (8192) bytes                  TOO_LONG
 *     - exactly three '.'-separated segments, each canonical unpadded
 *       base64url (no '=', '+', '/', whitespace, no non-zero trailing
 *       bits, no length of 1 mod 4); header and payload non-empty  MALFORMED
 *     - a header that is a JSON object (valid UTF-8, no duplicate member,
 *       nesting at most TK_VERIFY_JSON_DEPTH)                      MALFORMED
 *     - "alg" a string naming an allowed algorithm (never "none" in any
 *       case, never HS*)                                           ALG
 *     - no "crit"                                                  CRIT
 *     - no "jku", "x5u", "jwk" or "x5c" (keys come only from the JWKS
 *       given to the verifier)                                     HEADER_PARAM
 *     - "typ" "at+jwt" or "application/at+jwt", ASCII case-insensitive
 *       (RFC 9068 §4)                                              TYP
 *     - "kid" a string                                             KID_MISSING
 *       naming a key of the JWKS                                   KID_UNKNOWN
 *     - "alg" equal to that key's algorithm                        ALG
 *   The signature (ES256: exactly 64 bytes R||S; EdDSA: 64 bytes; RS256:
 *   exactly the modulus size), verified with OpenSSL against the key of
 *   "kid" only                                                     SIGNATURE
 *   After the signature:
 *     - a payload that is a JSON object (as for the header)        MALFORMED
 *     - "exp", "iat" present and JSON integers (not reals, not strings);
 *       "nbf" an integer when present; "jti", "iss", "sub", "client_id"
 *       present and non-empty strings; "scope", "acct" strings when
 *       present; "aud" a string or an array of strings when present
 *                                                      MISSING_CLAIM / CLAIM_TYPE
 *     - "iss" exactly the configured issuer                        ISSUER
 *     - with an audience configured: "aud" present and equal to it, or an
 *       array containing it                                        AUDIENCE
 *     - now < exp + leeway                                         EXPIRED
 *     - nbf <= now + leeway                                        NOT_YET_VALID
 *     - iat <= now + leeway                                        IAT_FUTURE
 *     - every required scope among the space-separated tokens of "scope"
 *                                                                  SCOPE
 *
 * ES256 signatures are malleable: for a valid (r, s), (r, n - s) also
 * verifies (OpenSSL, like RFC 7518, does not require low s). Never use the
 * token text (or its signature) as an identity for revocation or replay
 * detection; use "jti".
 *
 * Ownership: the verifier copies every string and the key material it is
 * given; callers keep ownership of their arguments. Claims returned in a
 * tk_claims belong to the caller (release with tk_claims_release, or
 * json_decref(claims.json)); its string fields point into claims.json.
 *
 * Errors: functions taking (char *err, size_t errlen) write a one-line
 * human-readable reason there on failure; err may be NULL or errlen 0. The
 * reason names claims and header parameters but never repeats any part of
 * the token (it is attacker-controlled and may be a credential), and never
 * any key material. Nothing in this module prints.
 *
 * Thread safety:
 *   - tk_verifier_new, tk_verifier_load_jwks and the setters are not
 *     thread-safe; finish them before sharing the verifier.
 *   - tk_verify / tk_verify_at, tk_verifier_key_count and tk_verifier_key_at
 *     never modify the verifier and may run concurrently on one verifier
 *     from any number of threads.
 *   - To refresh keys while threads verify, build a new verifier and
 *     publish it (e.g. an atomic pointer swap); free the old one when no
 *     thread uses it any more.
 *   - jansson: call json_object_seed(0) once before threads start (as
 *     tokend does); verification only creates json_t values the calling
 *     thread owns.
 */
#ifndef TOKEND_VERIFY_H
#define TOKEND_VERIFY_H

#include "tokend/export.h"

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <tokend/crypto.h>

/* Longest token accepted, in bytes (SECURITY F7). */
#define TK_VERIFY_TOKEN_MAX     TK_TOKEN_MAX
/* Deepest nesting of objects/arrays accepted in a header, payload or JWKS. */
#define TK_VERIFY_JSON_DEPTH    32
/* Largest JWK Set text, most entries in its "keys", longest kid. */
#define TK_VERIFY_JWKS_MAX      (1024 * 1024)
#define TK_VERIFY_MAX_KEYS      64
#define TK_VERIFY_KID_MAX       256
/* Clock leeway: default and the largest value tk_verifier_set_leeway takes. */
#define TK_VERIFY_LEEWAY_DEFAULT 30
#define TK_VERIFY_LEEWAY_MAX     60
/* Longest issuer and audience accepted by the setters. */
#define TK_VERIFY_URI_MAX       2048

/* Results of tk_verify. 0 is success; every other value is a rejection. */
enum tk_verify_result {
	TK_VERIFY_OK = 0,
	TK_VERIFY_EINVAL,          /* NULL argument, or the verifier has no issuer or no key */
	TK_VERIFY_NOMEM,           /* out of memory (the token was not judged) */
	TK_VERIFY_TOO_LONG,        /* more than TK_VERIFY_TOKEN_MAX bytes */
	TK_VERIFY_MALFORMED,       /* not three canonical base64url segments, or the header
	                              or payload is not a JSON object (bad JSON, duplicate
	                              member, too deep, invalid UTF-8) */
	TK_VERIFY_ALG,             /* alg missing, not a string, "none", HS*, not allowed,
	                              or not the algorithm of the kid's key */
	TK_VERIFY_TYP,             /* typ missing or not at+jwt / application/at+jwt */
	TK_VERIFY_KID_MISSING,     /* kid missing or not a string */
	TK_VERIFY_KID_UNKNOWN,     /* no key of the JWKS has this kid (refresh the JWKS?) */
	TK_VERIFY_HEADER_PARAM,    /* jku, x5u, jwk or x5c present in the header */
	TK_VERIFY_CRIT,            /* crit present (no extension is understood) */
	TK_VERIFY_SIGNATURE,       /* signature of the wrong size or not valid for the key */
	TK_VERIFY_MISSING_CLAIM,   /* exp, iat, jti, iss, sub or client_id missing; or aud
	                              missing while an audience is required */
	TK_VERIFY_CLAIM_TYPE,      /* a claim of the wrong JSON type (exp "123", exp 1.5,
	                              jti 7, aud [1], empty jti/iss/sub/client_id ...) */
	TK_VERIFY_EXPIRED,         /* exp + leeway <= now */
	TK_VERIFY_NOT_YET_VALID,   /* nbf > now + leeway */
	TK_VERIFY_IAT_FUTURE,      /* iat > now + leeway */
	TK_VERIFY_ISSUER,          /* iss is not the configured issuer */
	TK_VERIFY_AUDIENCE,        /* aud does not contain the configured audience */
	TK_VERIFY_SCOPE,           /* a required scope is not in the token's scope */
	TK_VERIFY_INTERNAL,        /* OpenSSL failed for a reason other than a bad signature */
	TK_VERIFY_STATUS,          /* the Token Status List marks the token's key invalid
	                              (revoked, disabled, deleted or expired: statuslist.h) */
	TK_VERIFY_STATUS_UNKNOWN,  /* the token's status cannot be established: no valid
	                              status list, an index beyond it, a "status" claim that
	                              is malformed or names another list (statuslist.h) */
};

typedef struct tk_verifier tk_verifier;

/*
 * The verified claims of one token. `json` is the whole payload object,
 * owned by the caller. The string fields point into `json` (NULL when the
 * claim is absent) and live as long as it does.
 */
typedef struct tk_claims {
	json_t *json;
	const char *iss;
	const char *sub;
	const char *client_id;
	const char *scope;          /* NULL when the token has no "scope" */
	const char *jti;
	const char *acct;           /* NULL when the token has no "acct" */
	int64_t exp;
	int64_t iat;
	int64_t nbf;                /* 0 when the token has no "nbf" */
	char kid[TK_VERIFY_KID_MAX + 1];  /* the header's kid */
	char alg[8];                /* the header's alg: "ES256", "EdDSA" or "RS256" */
} tk_claims;

/* json_decref(c->json) and zero *c. NULL is a no-op. */
TK_API void tk_claims_release(tk_claims *c);

/*
 * A verifier with no keys and no issuer (both must be set before tk_verify
 * succeeds), no audience, no required scope, leeway TK_VERIFY_LEEWAY_DEFAULT
 * seconds, algorithms ES256 EdDSA RS256. NULL when out of memory.
 */
TK_API tk_verifier *tk_verifier_new(void);

/* Free the verifier and its keys. NULL is a no-op. No tk_verify may be
 * running on it. */
TK_API void tk_verifier_free(tk_verifier *v);

/*
 * Load a JWK Set ({"keys":[...]}, RFC 7517 §5) of `len` bytes (no NUL
 * needed), replacing the keys loaded before. Returns 0, or -1 with `err` set
 * and the previous keys unchanged.
 *
 * A key is used when it is a public signing key of a supported kind:
 *   EC, crv "P-256"      -> ES256   (x and y exactly 32 bytes, point on the curve)
 *   OKP, crv "Ed25519"   -> EdDSA   (x exactly 32 bytes)
 *   RSA, 2048..8192 bits -> RS256   (e odd, 3..2^64-1)
 * Its "alg", when present, must name that algorithm; a key without "alg"
 * gets the algorithm implied by kty/crv. It must have a "kid" (1 to
 * TK_VERIFY_KID_MAX bytes), unique among the used keys.
 *
 * Skipped silently (they are legitimate in a shared JWKS): keys whose "use"
 * is not "sig", whose "key_ops" lacks "verify", whose "alg" is another
 * algorithm (ES384, PS256, ...), and keys without "alg" of a kind we do not
 * verify (EC P-384, Ed448, X25519, ...).
 *
 * The whole set is refused (fail closed) when: the text is not a JSON object
 * with a "keys" array (bad JSON, duplicate members, deeper than
 * TK_VERIFY_JSON_DEPTH, more than TK_VERIFY_JWKS_MAX bytes or
 * TK_VERIFY_MAX_KEYS entries); an entry is not an object or has no string
 * "kty"; any entry holds private or symmetric key material (d, p, q, dp, dq,
 * qi, oth, k; kty "oct"); a key of a supported algorithm is weak or
 * malformed (RSA < 2048 bits, "alg":"ES256" on a P-384 key, an "alg" that
 * does not fit its kty, bad base64url, a point off the curve); a used key
 * has no kid or a duplicate kid; or no key is usable at all.
 */
TK_API int tk_verifier_load_jwks(tk_verifier *v, const char *json, size_t len, char *err,
                          size_t errlen);

/* Number of keys in use, and the kid / alg of the one at `index` (strings
 * owned by the verifier; either out-pointer may be NULL). key_at returns 0,
 * or -1 when index is out of range. */
TK_API size_t tk_verifier_key_count(const tk_verifier *v);
TK_API int tk_verifier_key_at(const tk_verifier *v, size_t index, const char **kid,
                       const char **alg);

/* The expected "iss", compared byte for byte. Required: non-empty, at most
 * TK_VERIFY_URI_MAX bytes, no control characters. 0, or -1 with err. */
TK_API int tk_verifier_set_issuer(tk_verifier *v, const char *issuer, char *err, size_t errlen);

/* The audience the token's "aud" must contain (exact match). NULL or ""
 * removes the requirement (the default). 0, or -1 with err. */
TK_API int tk_verifier_set_audience(tk_verifier *v, const char *audience, char *err, size_t errlen);

/* Scopes that must all be in the token's "scope" claim: a space-separated
 * list (scope.h syntax). NULL or "" requires none (the default). 0, or -1
 * with err (invalid scope syntax). */
TK_API int tk_verifier_set_scopes(tk_verifier *v, const char *scopes, char *err, size_t errlen);

/* Clock leeway in seconds, 0..TK_VERIFY_LEEWAY_MAX, applied to exp, nbf and
 * iat. 0, or -1 with err. */
TK_API int tk_verifier_set_leeway(tk_verifier *v, long seconds, char *err, size_t errlen);

/* The accepted algorithms: a space-separated non-empty subset of
 * "ES256 EdDSA RS256" (exact case). 0, or -1 with err for any other name
 * (including none and HS*). */
TK_API int tk_verifier_set_algorithms(tk_verifier *v, const char *algs, char *err, size_t errlen);

/*
 * Verify the compact JWS `token` of `len` bytes (no NUL needed) at the
 * current time. Returns TK_VERIFY_OK and fills *out (when out is not NULL;
 * release it with tk_claims_release), or another tk_verify_result with the
 * reason in err and *out zeroed. Thread-safe (see above).
 */
TK_API int tk_verify(const tk_verifier *v, const char *token, size_t len, tk_claims *out, char *err,
              size_t errlen);

/* The same at the time `now` (seconds since the epoch): for tests and for
 * callers with their own clock. */
TK_API int tk_verify_at(const tk_verifier *v, const char *token, size_t len, int64_t now,
                 tk_claims *out, char *err, size_t errlen);

/* A short static description of a tk_verify_result ("token expired", ...);
 * "unknown error" for values outside the enum. */
TK_API const char *tk_verify_strerror(int code);

#endif
