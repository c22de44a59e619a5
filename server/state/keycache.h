/*
 * keycache.h - the in-memory cache of API keys, shared by the workers.
 *
 * Filled on demand from PostgreSQL, invalidated by LISTEN/NOTIFY (listener.c).
 * While the notification connection is down the cache is bypassed: get()
 * finds nothing and put() keeps nothing, so every request reads the database
 * (correctness over speed).
 *
 * Races between a lookup in flight and an invalidation are closed by a global
 * invalidation sequence: a lookup reads tk_keycache_seq() before going to the
 * database, and put() keeps the result only if no invalidation happened since.
 *
 * Sharded (64 shards, a mutex each): the hot path takes one uncontended lock.
 */
#ifndef TOKEND_KEYCACHE_H
#define TOKEND_KEYCACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <tokend/crypto.h>
#include <tokend/keyfmt.h>
#include <tokend/scope.h>

#include "intern.h"

#define TK_MAX_AUDIENCES TK_STRLIST_MAX

/* An API key as the token endpoint needs it (not a signing key: those are
 * lib/src/signer_int.h struct signing_key). Immutable once built; refcounted.
 *
 * Compact (a million of them are cached): a fixed-size record (216 bytes on
 * LP64) whose strings, scope set and audience list are interned (intern.h),
 * shared with every other key holding the same value, and released with the
 * record. The digests are wiped when the record is freed. */
typedef struct tk_apikey {
	_Atomic int refs;
	int lifetime;                     /* seconds; 0: server default */
	int rate_limit;                   /* tokens per minute; 0: none */
	int32_t loaded_at;                /* monotonic seconds (keycache) */
	int16_t pepper_id;
	uint16_t naud;
	char id[TK_KEY_ID_MAX + 1];
	unsigned char found;              /* 0: a negative entry (no such key) */
	unsigned char usable;             /* enabled, not revoked/deleted, account enabled */
	unsigned char publishable;        /* sql/010: a publishable key (origins above) */
	unsigned char cached;             /* in a cache's chain (under that shard's lock) */
	unsigned char hash[TK_HASH_LEN];
	/* A rotated key's previous secret (sql/008): accepted while the clock is
	 * before prev_until (epoch seconds; 0: no previous secret). prev_hash:
	 * TK_HASH_LEN bytes of its own (wiped on free), NULL without one, so that
	 * keys that never rotated do not carry the room. */
	unsigned char *prev_hash;
	int64_t prev_until;
	int64_t expires_at;               /* epoch seconds; 0: never */
	const char *unusable_reason;      /* static: why not usable (for the log only) */
	const char *environment;          /* static "live" or "test": the token's "env" */
	const char *account;              /* interned; NULL only in a negative entry */
	const char *subject;              /* interned; NULL: the key ID (a member key: its member) */
	const char *claims;               /* interned custom claims, a JSON object's text; NULL: none */
	/* A publishable key (sql/010): no secret (hash unused), its exact allowed
	 * browser origins, space-separated (origins never hold a space); interned.
	 * NULL: none (every key that is not publishable). */
	const char *origins;
	int64_t status_idx;               /* index in the Token Status List (sql/012) */
	const tk_scopes *scopes;          /* interned; never NULL in a found key */
	const char *const *aud;           /* naud audiences: the v of an interned tk_strlist */
	/* The one field that changes after build: last use known to this process
	 * (epoch seconds; 0: never), loaded from the database and moved forward
	 * by tk_lastused_mark when it writes a first use of the day at once. */
	_Atomic int64_t last_used_at;
	struct tk_apikey *next;           /* the cache's chain (keycache.c) */
} tk_apikey;

/* Set the interned values of `k` (a new record, none set yet) from their
 * texts: account, subject (NULL: none), claims (NULL: none), the scope string
 * and the space-separated audiences. 0; -1 out of memory (the record must not
 * be used); 1 the scope string is invalid (scopes is then the empty set). */
int tk_apikey_set_values(tk_apikey *k, const char *account, const char *subject, const char *claims,
                         const char *scopes, const char *audiences);
/* 1 when `origin` (a request's Origin header, exactly as sent) is one of a
 * publishable key's allowed origins; 0 otherwise (NULL or empty: 0). */
int tk_apikey_allows_origin(const tk_apikey *k, const char *origin);

/* A new key with one reference (fields to be filled by the caller). */
tk_apikey *tk_apikey_new(void);
tk_apikey *tk_apikey_ref(tk_apikey *k);
void tk_apikey_release(tk_apikey *k);

typedef struct tk_keycache tk_keycache;

tk_keycache *tk_keycache_new(size_t max_entries, int64_t ttl_seconds);
void tk_keycache_free(tk_keycache *c);

/* A referenced key (release it), or NULL on a miss, an expired entry, or bypass. */
tk_apikey *tk_keycache_get(tk_keycache *c, const char *id);
uint64_t tk_keycache_seq(tk_keycache *c);
/* Keep `k` (takes its own reference) unless an invalidation happened since `seq`. */
void tk_keycache_put(tk_keycache *c, tk_apikey *k, uint64_t seq);

void tk_keycache_invalidate(tk_keycache *c, const char *id);
void tk_keycache_invalidate_account(tk_keycache *c, const char *account);
void tk_keycache_flush(tk_keycache *c);
/* While on, the cache is empty and keeps nothing. */
void tk_keycache_set_bypass(tk_keycache *c, int on);
int tk_keycache_bypassed(tk_keycache *c);
size_t tk_keycache_size(tk_keycache *c);

#endif
