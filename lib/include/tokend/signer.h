/*
 * signer.h - signing keys (loaded once, published as a JWKS) and RFC 9068
 * access-token minting.
 *
 * A tk_signer is the server's set of asymmetric signing keys. It is built
 * once at startup from key files, each holding exactly one private key:
 *
 *   - a JWK (RFC 7517/7518/8037 JSON object, private members included,
 *     "kid" and "alg" optional), or
 *   - a PEM private key (PKCS#8 "PRIVATE KEY", or the traditional
 *     "EC PRIVATE KEY" / "RSA PRIVATE KEY" forms), unencrypted.
 *
 * Accepted keys and the algorithm each one signs with:
 *
 *   EC P-256          -> ES256
 *   Ed25519 (OKP)     -> EdDSA
 *   RSA 2048..8192    -> RS256
 *
 * Everything else is refused: other curves (P-384, P-521, secp256k1, Ed448),
 * RSA below 2048 bits, RSA-PSS-restricted and multi-prime RSA keys,
 * passphrase-protected PEM (OpenSSL never prompts on a terminal), public-only
 * keys, a JWK "alg" that does not name the key's algorithm, a JWK "use" other
 * than "sig", a key whose public part does not match its private part, files
 * that are not regular files or that group or others may access (mode & 077),
 * and a kid already in the set.
 *
 * Every key is converted once into a canonical private JWK (EC coordinates
 * and d padded to 32 bytes, RSA integers minimal), handed to libjwt, and the
 * intermediate buffers holding private material are wiped. When the key has
 * no "kid", its kid is the RFC 7638 JWK thumbprint (SHA-256, base64url,
 * 43 characters). Each key is checked at load by signing a token with libjwt
 * and verifying it against the public JWK that the JWKS will publish.
 *
 * Tokens are minted through a tk_minter, a per-thread context holding, per
 * key, the encoded header and a signature context prepared once: no key is
 * parsed and no algorithm looked up on the request path.
 *
 * Errors: functions taking (char *err, size_t errlen) write a one-line,
 * human-readable reason there on failure (never any key material); err may
 * be NULL or errlen 0 to discard it. Nothing in this module prints.
 *
 * Thread safety:
 *   - Building (tk_signer_new, tk_signer_add_file) is single-threaded and must
 *     finish before the first tk_minter_new; after that tk_signer_add_file
 *     refuses (the set is frozen).
 *   - Once built, the read-only functions (tk_signer_count, tk_signer_key_at,
 *     tk_signer_active_kid/alg, tk_signer_jwks_json) and tk_minter_new may be
 *     called from any thread concurrently; tk_signer_set_active is safe to call
 *     concurrently with them and with minting (atomic switch).
 *   - A tk_minter must be used by one thread at a time (one per worker).
 *   - tk_signer_free only after every tk_minter made from it has been freed.
 */
#ifndef TOKEND_SIGNER_H
#define TOKEND_SIGNER_H

#include "tokend/export.h"

#include <stddef.h>
#include <stdint.h>

/* Length of a jti: 128 random bits in unpadded base64url. */
#define TK_JTI_LEN          22
/* Length of an RFC 7638 SHA-256 thumbprint in unpadded base64url. */
#define TK_THUMBPRINT_LEN   43
/* Longest kid accepted from a JWK file (printable ASCII without '"' or '\'). */
#define TK_KID_MAX          128
/* Most keys a signer holds, and most audiences a token carries. */
#define TK_SIGNER_MAX_KEYS  32
#define TK_AUD_MAX          32

typedef struct tk_signer tk_signer;
typedef struct tk_minter tk_minter;

/* ------------------------------------------------------------------------ */
/* Signing key set                                                          */

/* An empty key set, or NULL when out of memory. Free with tk_signer_free. */
TK_API tk_signer *tk_signer_new(void);

/*
 * Load the private key in `path` (JWK or PEM, detected from the content) and
 * add it to the set. The first key added becomes the active key.
 * Returns 0 on success; -1 on refusal or error with the reason in `err`,
 * prefixed with the path, e.g.
 *   "/etc/tokend/k1.pem: private key file is readable by others (chmod 600)".
 * The set is unchanged on failure. Not thread-safe; refused once a minter
 * exists.
 */
TK_API int tk_signer_add_file(tk_signer *s, const char *path, char *err, size_t errlen);

/*
 * The same for a private key held in memory (`len` bytes of a JWK or PEM, as
 * in a key file; no file checks), named `label` in messages (e.g. "signing key
 * <kid>"). `want_kid`: when not NULL, the key's RFC 7638 thumbprint (and its
 * JWK's own kid, if any) must equal it, so that a key cannot pass for another.
 * The caller wipes its copy of `key`; this function wipes its own.
 */
TK_API int tk_signer_add_key(tk_signer *s, const char *key, size_t len, const char *want_kid,
                             const char *label, char *err, size_t errlen);

/*
 * A fresh private key for `alg` ("ES256": P-256, "EdDSA": Ed25519, "RS256":
 * RSA 3072) from OpenSSL's CSPRNG, as a private JWK (kid = its RFC 7638
 * thumbprint, written to `kid`, alg, use "sig"). Returns the malloc'd JSON
 * (wipe with tk_wipe, then free), and in *pub_json (malloc'd) its public JWK;
 * NULL with `err` set for an unknown alg or an OpenSSL failure.
 */
TK_API char *tk_signing_key_generate(const char *alg, char kid[TK_THUMBPRINT_LEN + 1],
                                     char **pub_json, char *err, size_t errlen);

/*
 * Make the key `kid` the one new tokens are signed with. Returns 0, or -1 with
 * `err` set when no key has that kid. Thread-safe: minters pick up the change
 * at their next mint.
 */
TK_API int tk_signer_set_active(tk_signer *s, const char *kid, char *err, size_t errlen);

/* Sign with no key: tk_minter_mint fails ("active signing key is not
 * available") and tk_signer_active_kid is NULL until tk_signer_set_active.
 * For a set that publishes keys none of which may sign yet. Thread-safe. */
TK_API void tk_signer_clear_active(tk_signer *s);

/* Number of keys in the set. */
TK_API size_t tk_signer_count(const tk_signer *s);

/*
 * Kid and alg ("ES256", "EdDSA", "RS256") of the key at `index` (load order).
 * Either out-pointer may be NULL. Returns 0, or -1 if index is out of range.
 * The strings belong to the signer and live until tk_signer_free.
 */
TK_API int tk_signer_key_at(const tk_signer *s, size_t index, const char **kid, const char **alg);

/* Kid / alg of the active key, or NULL for an empty set. The strings belong
 * to the signer and live until tk_signer_free. */
TK_API const char *tk_signer_active_kid(const tk_signer *s);
TK_API const char *tk_signer_active_alg(const tk_signer *s);

/*
 * The public JWK Set of every key, in load order, as compact JSON:
 *   {"keys":[{"kty":"EC","crv":"P-256","x":"..","y":"..","kid":"..","alg":"ES256","use":"sig"},..]}
 * Only public members are present (kty, crv, x, y / n, e, kid, alg, use);
 * never d, p, q, dp, dq, qi. Returns a malloc'd string the caller frees with
 * free(), or NULL when out of memory.
 */
TK_API char *tk_signer_jwks_json(const tk_signer *s);

/* Free the set and every key in it (libjwt wipes its private key copies).
 * NULL is a no-op. All minters made from `s` must have been freed before. */
TK_API void tk_signer_free(tk_signer *s);

/*
 * RFC 7638 JWK thumbprint of the JWK given as `len` bytes of JSON (public or
 * private; only the required public members are hashed: EC crv,kty,x,y;
 * RSA e,kty,n; OKP crv,kty,x). Writes 43 base64url characters and a NUL to
 * `out`. Returns 0, or -1 with `err` set for malformed JSON, an unknown kty,
 * or a missing / non-string / non-base64url member. Thread-safe.
 */
TK_API int tk_jwk_thumbprint(const char *jwk_json, size_t len, char out[TK_THUMBPRINT_LEN + 1],
                      char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* Minting                                                                  */

/*
 * The claims of one access token (RFC 9068 §2.2). All pointers are borrowed
 * for the duration of tk_minter_mint only. Strings must be valid UTF-8.
 */
typedef struct tk_token_claims {
	const char *iss;          /* required, non-empty */
	const char *sub;          /* required, non-empty */
	const char *const *aud;   /* required: aud_count non-empty strings; emitted */
	size_t aud_count;         /*   as a string when 1, an array when 2..TK_AUD_MAX */
	const char *client_id;    /* required, non-empty (the key ID) */
	const char *scope;        /* space-separated scopes; NULL or "" omits "scope" */
	const char *acct;         /* required, non-empty: account id, claim "acct" */
	int64_t iat;              /* required, > 0 (seconds since the epoch); nbf = iat */
	int64_t exp;              /* required, > iat */
	const char *env;          /* optional: the key's environment, claim "env"; NULL omits it */
	const char *origin;       /* optional: the browser origin a publishable key's token was
	                           * issued to, claim "origin"; NULL omits it */
	const char *extra;        /* optional: a JSON object of custom claims added last; a name
	                           * already set above is never replaced; NULL or "" adds none */
	const char *status_uri;   /* optional: with status_idx, the claim
	                           * "status":{"status_list":{"idx":status_idx,"uri":status_uri}}
	                           * (Token Status List); NULL or "" omits it */
	int64_t status_idx;       /*   the key's index in that list, >= 0 */
} tk_token_claims;

/*
 * A minting context for one thread: per key of `s`, the encoded header and a
 * signing context prepared once, each self-tested against the published
 * public JWK with libjwt. Freezes `s` (no further tk_signer_add_file). Returns
 * NULL with `err` set if `s` is empty or on allocation / libjwt failure.
 * `s` must outlive the minter.
 */
TK_API tk_minter *tk_minter_new(const tk_signer *s, char *err, size_t errlen);

/*
 * Mint a compact JWS access token signed with the signer's active key.
 *   header: {"alg":<alg>,"kid":<kid>,"typ":"at+jwt"}
 *   claims: iss, sub, aud, client_id, scope (if any), acct, iat, nbf (= iat),
 *           exp, jti (128 bits from the CSPRNG, base64url, 22 chars), env,
 *           origin, status (each if given), then the members of `extra` (if
 *           any) not named above
 * Exactly the claims of `c` appear: nothing carries over from a previous
 * mint. Returns a malloc'd NUL-terminated token the caller frees with free(),
 * and, when `jti_out` is not NULL, copies the jti there. Returns NULL with
 * `err` set on invalid claims, CSPRNG failure (no token is ever made without
 * a fresh jti) or signing failure. Not thread-safe: one minter per thread.
 * A token longer than TK_TOKEN_MAX bytes is not issued (NULL, err set).
 */
TK_API char *tk_minter_mint(tk_minter *m, const tk_token_claims *c, char jti_out[TK_JTI_LEN + 1],
                     char *err, size_t errlen);

/*
 * The same as tk_minter_mint, without the copy: returns the token in the
 * minter's own buffer (valid until the next mint or tk_minter_free; the
 * minter wipes it when freed) and its length in *len_out when not NULL.
 * No allocation of its own unless the claims carry `extra` (OpenSSL still
 * allocates inside the signature).
 */
TK_API const char *tk_minter_mint_ref(tk_minter *m, const tk_token_claims *c,
                                      char jti_out[TK_JTI_LEN + 1], size_t *len_out, char *err,
                                      size_t errlen);

/*
 * Sign an arbitrary claim set with the signer's active key (for documents
 * other than access tokens, such as a Token Status List token):
 *   header: {"alg":<alg>,"kid":<kid>,"typ":<typ>}
 *   payload: exactly the members of the JSON object `claims_json`
 * Returns a malloc'd compact JWS the caller frees with free(), or NULL with
 * `err` set when `typ` is NULL or empty, `claims_json` is not one JSON
 * object, signing fails, or the result is longer than `max_len` bytes (0:
 * no limit). Not thread-safe: one minter per thread, as for minting.
 */
TK_API char *tk_minter_sign(tk_minter *m, const char *typ, const char *claims_json, size_t max_len,
                            char *err, size_t errlen);

/* Wipe the last token tk_minter_mint_ref returned (and its claims) from the
 * minter's buffers, once the caller has copied it: no bearer token lingers in
 * memory until the next mint. NULL is a no-op. */
TK_API void tk_minter_forget(tk_minter *m);

/* Free a minter. NULL is a no-op. */
TK_API void tk_minter_free(tk_minter *m);

#endif
