/*
 * ratelimit.h - failed-authentication limits with decay (leaky buckets).
 *
 * Each failed client authentication adds 1 to the bucket of the client's
 * address and to the bucket of the key ID it named; buckets drain at
 * `per_minute` / 60 per second. A bucket above `per_minute` is "over":
 *   - an address over its limit gets 429 + Retry-After for every refusal
 *     (requests without well-formed credentials before any hashing or
 *     database work), but a right secret for a usable key still gets its
 *     token: behind a proxy one address is every client's;
 *   - a key ID over its limit answers a WRONG secret with 429, but a right
 *     secret still gets its token: an attacker hammering one key ID from
 *     other addresses never locks its holder out.
 * The address is tk_http_client's: the TCP peer, or behind trusted_proxies
 * the last untrusted X-Forwarded-For hop (never X-Forwarded-For otherwise).
 * Shared by the workers: 64 shards with a mutex each; bounded memory.
 */
#ifndef TOKEND_RATELIMIT_H
#define TOKEND_RATELIMIT_H

#include <stdint.h>

typedef struct tk_ratelimit tk_ratelimit;

/* per_minute 0 disables the limiter (every check passes). */
tk_ratelimit *tk_ratelimit_new(int per_minute, int max_entries);
void tk_ratelimit_free(tk_ratelimit *rl);

/* 0 when under the limit; else the seconds to wait (>= 1). */
int tk_ratelimit_check(tk_ratelimit *rl, const char *name);
/* Count one failure for `name`. */
void tk_ratelimit_fail(tk_ratelimit *rl, const char *name);

/*
 * Issuance limits (a limiter made with per_minute 0; each name has its own
 * rate): take one of `per_minute` for `name` - a bucket of that size that
 * drains at per_minute / 60 per second, so a burst of per_minute, then a
 * steady rate. 0 when taken; else the seconds to wait (>= 1), nothing taken.
 */
int tk_ratelimit_take(tk_ratelimit *rl, const char *name, int per_minute);

#endif
