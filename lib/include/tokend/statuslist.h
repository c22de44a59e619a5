/*
 * statuslist.h - the Token Status List (draft-ietf-oauth-status-list) in its
 * JWT form: how tokend encodes a list, and how a verifier checks a token
 * against one.
 *
 * tokend gives every API key an index in one status list; each access token
 * carries its key's index:
 *
 *   "status":{"status_list":{"idx":17,"uri":"https://auth.example.com/oauth2/status-list"}}
 *
 * and tokend serves, at that URI, a status list token signed with a key of
 * its JWKS (media type application/statuslist+jwt):
 *
 *   header: {"alg":..,"kid":..,"typ":"statuslist+jwt"}
 *   claims: {"sub":<the URI>,"iss":<issuer>,"iat":..,"exp":..,"ttl":<seconds>,
 *            "status_list":{"bits":1,"lst":<base64url(ZLIB(bytes))>}}
 *
 * One bit per index: index i is bit (i % 8), counted from the least
 * significant, of byte i / 8. 1 means the key is no longer valid (disabled,
 * revoked, deleted or expired), 0 valid. `lst` is the byte array compressed
 * with DEFLATE in the ZLIB format (RFC 1950), then unpadded base64url.
 *
 * Verifier side: a tk_status_cache holds the last status list fetched from one
 * URI and says when to fetch the next (tk_status_cache_due); the caller does
 * the HTTP (this library does no I/O) and hands the body to
 * tk_status_cache_install, which verifies it with the same tk_verifier (same
 * JWKS, same code) as access tokens. tk_status_check then judges a verified
 * token's "status" claim.
 *
 * Refresh: the list is fetched again once it is `ttl` seconds old, the ttl
 * bounded to [refresh_min, refresh_max] (a list without ttl: refresh_max);
 * never more often than every refresh_min seconds, failed attempts included
 * (a broken issuer is not hammered).
 *
 * Fail closed: a token carrying a "status" claim is refused
 * (TK_VERIFY_STATUS_UNKNOWN) while the cache holds no valid list: none fetched
 * yet, or the last one past its "exp" (tokend sets exp to iat + 2 * ttl, so a
 * verifier that cannot refresh keeps working for about one ttl more and then
 * refuses), or when the token's index lies beyond the list (a refresh is then
 * due), or when its "uri" is not the cache's URI (a token never chooses where
 * its verifier fetches from). A token without a "status" claim is not judged
 * here (tokend puts one in every token while status_list = on; the claim is
 * signed, so it cannot be stripped).
 *
 * Errors: as verify.h (err never repeats token text). Thread safety: a
 * tk_status_cache may be used from any number of threads (one mutex); a
 * tk_status_list is read-only once made.
 */
#ifndef TOKEND_STATUSLIST_H
#define TOKEND_STATUSLIST_H

#include "tokend/export.h"

#include <stddef.h>
#include <stdint.h>

#include <tokend/verify.h>

/* Longest status list token accepted, and the most bytes its list may
 * inflate to (2^27 indexes); a larger list is refused, not truncated. */
#define TK_STATUS_TOKEN_MAX     (4 * 1024 * 1024)
#define TK_STATUS_BYTES_MAX     (16 * 1024 * 1024)
/* Bounds of the refresh bounds (seconds). */
#define TK_STATUS_REFRESH_FLOOR 1
#define TK_STATUS_REFRESH_CEIL  86400
/* The media type of a status list token (the HTTP Accept / Content-Type). */
#define TK_STATUS_MEDIA_TYPE    "application/statuslist+jwt"

typedef struct tk_status_list tk_status_list;
typedef struct tk_status_cache tk_status_cache;

/* ------------------------------------------------------------------------ */
/* Encoding (the server)                                                    */

/*
 * The "lst" value of `n` bytes of bits (bit order above): ZLIB-compressed
 * (best compression), unpadded base64url. A malloc'd string the caller frees,
 * or NULL with err set (out of memory, n above TK_STATUS_BYTES_MAX).
 */
TK_API char *tk_status_list_encode(const unsigned char *bytes, size_t n, char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* Verification (a resource server)                                         */

/*
 * Verify the status list token `token` (`len` bytes) with verifier `v` (its
 * JWKS, algorithms and leeway; "iss", when present, must be v's issuer) and
 * decode its list. Checks, beyond the signature and header (typ
 * statuslist+jwt or application/statuslist+jwt): "sub" equal to `uri`; "iat"
 * and "exp" integers, now < exp + leeway, iat <= now + leeway; "ttl", when
 * present, a positive integer; "status_list" an object with "bits" 1 and
 * "lst" canonical base64url of a ZLIB stream that inflates to 1 to
 * TK_STATUS_BYTES_MAX bytes with nothing after its end. Returns TK_VERIFY_OK
 * and *out (free with tk_status_list_free), or a tk_verify_result with err.
 */
TK_API int tk_status_list_parse(const tk_verifier *v, const char *token, size_t len,
                                const char *uri, int64_t now, tk_status_list **out, char *err,
                                size_t errlen);

/* The bit of index `idx`: 0 or 1, or -1 when idx is negative or beyond the list. */
TK_API int tk_status_list_get(const tk_status_list *l, int64_t idx);
/* Number of indexes the list covers (8 per byte). */
TK_API size_t tk_status_list_size(const tk_status_list *l);
/* Its claims: iat, exp, and ttl (0 when absent). */
TK_API int64_t tk_status_list_iat(const tk_status_list *l);
TK_API int64_t tk_status_list_exp(const tk_status_list *l);
TK_API int64_t tk_status_list_ttl(const tk_status_list *l);
/* NULL is a no-op. */
TK_API void tk_status_list_free(tk_status_list *l);

/*
 * A cache for the list at `uri` (an absolute http(s) URL, at most
 * TK_VERIFY_URI_MAX bytes), refreshed by the list's ttl bounded to
 * [refresh_min, refresh_max] seconds, TK_STATUS_REFRESH_FLOOR <= refresh_min
 * <= refresh_max <= TK_STATUS_REFRESH_CEIL. NULL with err on a bad argument
 * or out of memory. Free with tk_status_cache_free.
 */
TK_API tk_status_cache *tk_status_cache_new(const char *uri, long refresh_min, long refresh_max,
                                            char *err, size_t errlen);
TK_API void tk_status_cache_free(tk_status_cache *c);
/* The URI given to tk_status_cache_new (owned by the cache). */
TK_API const char *tk_status_cache_uri(const tk_status_cache *c);

/*
 * 1 when the caller should fetch the list now: none held, or the one held is
 * as old as its bounded ttl or past its exp, or a check found an index beyond
 * it; and no attempt (install or failed) in the last refresh_min seconds.
 * 0 otherwise.
 */
TK_API int tk_status_cache_due(tk_status_cache *c, int64_t now);

/*
 * Verify and decode a fetched status list token (tk_status_list_parse with
 * the cache's URI) and make it the cache's list. TK_VERIFY_OK, or the
 * refusal with err set and the list held before kept (it still serves until
 * its own exp). Either way it counts as an attempt.
 */
TK_API int tk_status_cache_install(tk_status_cache *c, const tk_verifier *v, const char *token,
                                   size_t len, int64_t now, char *err, size_t errlen);

/* Record a fetch that failed (network, HTTP status): an attempt. */
TK_API void tk_status_cache_failed(tk_status_cache *c, int64_t now);

/*
 * Judge the verified token `claims` (from tk_verify) against the cache's list
 * at time `now`: TK_VERIFY_OK when its key's bit is 0 or it has no "status"
 * claim; TK_VERIFY_STATUS when the bit is 1; TK_VERIFY_STATUS_UNKNOWN (fail
 * closed, see above) or TK_VERIFY_EINVAL (NULL argument) with err set.
 */
TK_API int tk_status_check(tk_status_cache *c, const tk_claims *claims, int64_t now, char *err,
                           size_t errlen);

#endif
